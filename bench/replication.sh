#!/usr/bin/env bash
# bench/replication.sh - the cost of replication and the stall on a fault
# (issue 4).
#
# Part 1 (throughput): in one invocation, a single-replica realm
# (encore local up --servers 1) and a 3-replica realm (--servers 3), all on
# this machine (loopback TCP); the shared fsbench harness on both mounts,
# ROUNDS rounds alternating; summarize.py --base encore-r1 gives r3/r1 per
# phase. FSB_QUICK=1 sizes unless FSB_QUICK=0 is set (full sizes).
#
# Part 2 (stalls, 3-replica realm, 2 clients): for each fault
#   kill      kill -9 of one server     (encore local stop-server N)
#   freeze    SIGSTOP of one server     (encore local freeze-server N)
#   partition nftables drops every packet to or from the server's port on
#             loopback (silent loss: clients and peers connecting to it see
#             timeouts, never an error; the server's own outgoing peer
#             connections are not cut)
# STALL_REPS repetitions: client 2 writes a file client 1 never saw; the
# server client 1 prefers (lowest rtt in `encore status`) is faulted; from
# the moment of the fault two threads run at once through client 1's mount:
# the first read of that uncached file (open + read + close) and the first
# update (create + write + close of a new file). Each latency is measured
# from the fault. Then the server is restored (start-server / thaw-server /
# rule removed) and the script waits (bounded) until `encore check-servers
# --json` shows every server up. Median and max per fault and operation.
#
# Writes docs/bench/<date>-replication/{encore-r1,encore-r3}.jsonl,
# stalls.jsonl and docs/bench/<date>-replication.md (or $OUT).
#
# Usage (root, from the repository root):  bench/replication.sh [ROUNDS]
# Environment: BENCH_WORK=/var/tmp/encore-repl; STALL_REPS=5;
#   STALL_FAULTS="kill freeze partition"; SKIP_FSBENCH=1 / SKIP_STALLS=1;
#   ENCORE_BIN=build/bin; OP_TIMEOUT=60 (seconds an operation may take
#   before it is reported as hung); UP_TIMEOUT=60 (wait for a restored server)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
top=$(pwd)
shared=${SHARED_BENCH:-/work/shared/bench}
[ -x "$shared/fsbench.sh" ] || shared=$top/../shared/bench
work=${BENCH_WORK:-/var/tmp/encore-repl}
bin=${ENCORE_BIN:-build/bin}
enc=$bin/encore
export FSB_QUICK=${FSB_QUICK:-1}
reps=${STALL_REPS:-5}
faults=${STALL_FAULTS:-kill freeze partition}
stamp=$(date -u +%Y-%m-%d)
outd=docs/bench/$stamp-replication
out=${OUT:-docs/bench/$stamp-replication.md}
[ -x "$enc" ] || make -j2 all
[ "$(id -u)" = 0 ] || { echo "replication.sh: needs root" >&2; exit 2; }
load0=$(cut -d' ' -f1-3 /proc/loadavg)
date0=$(date -u '+%Y-%m-%d %H:%M UTC')
commit=$(git -C "$bin" rev-parse --short HEAD 2>/dev/null || echo unknown)  # of the binaries run
mkdir -p "$outd" "$work"

cleanup() {
	nft delete table inet encbench 2>/dev/null || true
	for r in r1 r3 st; do
		[ -d "$work/$r" ] && timeout 60 "$enc" local thaw-server --dir "$work/$r" 1 >/dev/null 2>&1 || true
		timeout 120 "$enc" local down --dir "$work/$r" >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT

js() { /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
up() { # dir servers clients
	timeout 120 "$enc" local down --dir "$1" >/dev/null 2>&1 || true
	rm -rf "$1"
	timeout 120 "$enc" local up --dir "$1" --servers "$2" --clients "$3" --cache-size 4096 >&2
}

# ---- part 1: fsbench r1 vs r3 ------------------------------------------------
if [ "${SKIP_FSBENCH:-0}" != 1 ]; then
	up "$work/r1" 1 1
	up "$work/r3" 3 1
	declare -A mnt pids
	for r in r1 r3; do
		st=$("$enc" local status --dir "$work/$r" --json)
		mnt[$r]=$(js 's["mount"]' <<<"$st")/local
		pids[$r]=$(js '" ".join(str(x["pid"]) for x in s["clients"]+s["servers"])' <<<"$st")
		rm -f "$outd/encore-$r.jsonl"
	done
	for i in $(seq "$rounds"); do
		for r in r1 r3; do
			echo "== round $i: encore-$r" >&2
			FSB_RUN=$i FSB_PIDS="${pids[$r]}" timeout 3600 "$shared/fsbench.sh" "${mnt[$r]}" "encore-$r" >> "$outd/encore-$r.jsonl"
		done
	done
	echo "fsbench part: started $date0, commit $commit, $rounds rounds, FSB_QUICK=$FSB_QUICK; load average at start $load0, at the end $(cut -d' ' -f1-3 /proc/loadavg)." > "$outd/fsbench-meta.txt"
	/usr/bin/python3 "$shared/summarize.py" --base encore-r1 "$outd/encore-r1.jsonl" "$outd/encore-r3.jsonl" > "$outd/table.md"
	timeout 120 "$enc" local down --dir "$work/r1" >/dev/null 2>&1 || true
	timeout 120 "$enc" local down --dir "$work/r3" >/dev/null 2>&1 || true
fi

# ---- part 2: stalls ------------------------------------------------------------
if [ "${SKIP_STALLS:-0}" != 1 ]; then
	up "$work/st" 3 2
	rm -f "$outd/stalls.jsonl"
	echo "stall part: started $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit, $reps repetitions; load average at start $(cut -d' ' -f1-3 /proc/loadavg)." > "$outd/stalls-meta.txt"
	ENC="$enc" DIR="$work/st" REPS="$reps" FAULTS="$faults" \
		OP_TIMEOUT="${OP_TIMEOUT:-60}" UP_TIMEOUT="${UP_TIMEOUT:-60}" \
		/usr/bin/python3 - > "$outd/stalls.jsonl" <<'EOF'
import json, os, subprocess, sys, threading, time
enc, d = os.environ["ENC"], os.environ["DIR"]
reps, optmo, uptmo = int(os.environ["REPS"]), float(os.environ["OP_TIMEOUT"]), float(os.environ["UP_TIMEOUT"])
def run(*a, t=60):
    return subprocess.run(list(a), capture_output=True, text=True, timeout=t)
st = json.loads(run(enc, "local", "status", "--dir", d, "--json").stdout)
m1 = st["clients"][0]["mount"] + "/local"
m2 = st["clients"][1]["mount"] + "/local"
ports = {s["id"]: s["port"] for s in st["servers"]}
def servers_state():
    r = run(enc, "check-servers", "--json", m1, t=30)
    return json.loads(r.stdout)["servers"]
def wait_all_up():
    t0 = time.monotonic()
    while time.monotonic() - t0 < uptmo:
        try:
            if all(s["state"] == "up" for s in servers_state()):
                return time.monotonic() - t0
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("server not back up within %.0f s" % uptmo)
def preferred():
    s = json.loads(run(enc, "status", "--json", m1, t=30).stdout)["servers"]
    return min((x for x in s if x["state"] == "up"), key=lambda x: x["rtt_us"])["id"]
def nft(*cmds):
    for c in cmds:
        r = subprocess.run(["nft"] + c.split(), capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise SystemExit("nft %s: %s" % (c, r.stderr))
def fault(kind, n):
    if kind == "kill":
        run(enc, "local", "stop-server", "--dir", d, str(n))
    elif kind == "freeze":
        run(enc, "local", "freeze-server", "--dir", d, str(n))
    else:
        p = ports[n]
        nft("add table inet encbench",
            "add chain inet encbench in { type filter hook input priority -10 ; }",
            "add rule inet encbench in tcp dport %d drop" % p,
            "add rule inet encbench in tcp sport %d drop" % p)
def restore(kind, n):
    if kind == "kill":
        r = run(enc, "local", "start-server", "--dir", d, str(n))
        if r.returncode:
            raise SystemExit("start-server: " + r.stderr)
    elif kind == "freeze":
        run(enc, "local", "thaw-server", "--dir", d, str(n))
    else:
        nft("delete table inet encbench")
os.makedirs(m1 + "/stall", exist_ok=True)
os.listdir(m1 + "/stall")
wait_all_up()
for kind in os.environ["FAULTS"].split():
    for rep in range(1, reps + 1):
        name = "%s-%d" % (kind, rep)
        data = (name * 200).encode()[:4096]
        with open(m2 + "/stall/" + name + ".r", "wb") as f:  # client 1 never saw it
            f.write(data)
        time.sleep(0.5)  # let client 1's srtt settle after client 2's create broke callbacks
        res, rec = {}, {"fault": kind, "rep": rep}
        def rd():
            with open(m1 + "/stall/" + name + ".r", "rb") as f:
                got = f.read()
            res["read_ok"] = got == data
            res["read_s"] = time.monotonic() - t0
        def up_():
            with open(m1 + "/stall/" + name + ".w", "wb") as f:
                f.write(data)
            res["update_s"] = time.monotonic() - t0
        # One fault for the read, another for the update: run together, the
        # first to give up on the faulted server would shorten the other's wait.
        for key, fn in (("read_s", rd), ("update_s", up_)):
            if key == "update_s":
                # client 2's create broke client 1's callback on the directory:
                # list it first, so that the create's LOOKUP is answered from
                # the cache and the first call after the fault is the update.
                os.listdir(m1 + "/stall")
            n = preferred()
            t0 = time.monotonic()
            fault(kind, n)
            rec["fault_cmd_s_" + key[0]] = round(time.monotonic() - t0, 3)
            th = threading.Thread(target=fn, daemon=True)
            th.start()
            th.join(max(0.1, optmo - (time.monotonic() - t0)))
            restore(kind, n)
            rec["server_" + key[0]] = n
            rec["back_up_s_" + key[0]] = round(wait_all_up(), 2)
            if key not in res:
                print("%s %s still hung %.0f s after the fault; stopping" % (name, key, optmo), file=sys.stderr)
                print(json.dumps(rec), flush=True)
                os._exit(1)
            time.sleep(0.5)  # srtt settles; the next fault hits the preferred server again
        rec.update(res)
        rec["server"] = rec["server_r"]
        print(json.dumps(rec), flush=True)
        print(rec, file=sys.stderr, flush=True)
        # the update must be visible through client 2 once the server is back
        with open(m2 + "/stall/" + name + ".w", "rb") as f:
            if f.read() != data:
                print("update %s lost or wrong on client 2" % name, file=sys.stderr)
                os._exit(1)
EOF
	timeout 120 "$enc" local down --dir "$work/st" >/dev/null 2>&1 || true
fi

# ---- report ------------------------------------------------------------------------
{
	echo "# Replication benchmark, $stamp"
	echo
	echo "bench/replication.sh ($rounds rounds, FSB_QUICK=$FSB_QUICK). Machine: $(nproc) cores,"
	echo "$(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
	echo "Started $date0, commit $commit; load average at start: $load0, at the end:"
	echo "$(cut -d' ' -f1-3 /proc/loadavg). The machine was shared: other engineers ran builds and"
	echo "test suites during the run."
	echo
	if [ -f "$outd/table.md" ]; then
		echo "## fsbench, 3 replicas vs 1 (ratios r3/r1; > 1 is faster)"
		echo
		echo "Both realms on this machine, every server and client on loopback TCP:"
		echo "3 replicas means 3 server processes and 3 fsyncs per update on the same disk."
		echo
		cat "$outd/fsbench-meta.txt" 2>/dev/null || true
		echo
		cat "$outd/table.md"
		echo
	fi
	if [ -s "$outd/stalls.jsonl" ]; then
		echo "## Stalls on a fault (3 replicas; seconds from the fault)"
		echo
		cat "$outd/stalls-meta.txt" 2>/dev/null || true
		echo
		/usr/bin/python3 - "$outd/stalls.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| fault | reps | first read median | max | first update median | max | reads correct |")
print("|---|---|---|---|---|---|---|")
for k in dict.fromkeys(r["fault"] for r in rows):
    rs = [r for r in rows if r["fault"] == k]
    a = [r["read_s"] for r in rs]; b = [r["update_s"] for r in rs]
    print("| %s | %d | %.3f | %.3f | %.3f | %.3f | %d/%d |" % (k, len(rs), statistics.median(a), max(a),
          statistics.median(b), max(b), sum(1 for r in rs if r["read_ok"]), len(rs)))
print()
print("Read and update each measured under its own fault. Per repetition (server = the one faulted, client 1's preferred): "
      + "; ".join("%s#%d s%d read %.3f update %.3f" % (r["fault"], r["rep"], r["server"], r["read_s"], r["update_s"]) for r in rows))
EOF
	fi
} > "$out"
cat "$out"
