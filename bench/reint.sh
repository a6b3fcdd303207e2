#!/usr/bin/env bash
# bench/reint.sh - reintegration speed after disconnected operation (issue 5).
#
# A 3-replica realm with 2 clients (encore local up --servers 3 --clients 2),
# all on this machine (loopback TCP). Through client 1:
#   1. baseline: DIRS x FILES files of KB KiB each created connected
#      (mkdir, then create + write + close per file), timed;
#   2. `encore disconnect`; the same tree created again under another name
#      while disconnected (timed: emulation, the CML appends);
#      `encore status --json` gives the CML records and bytes;
#   3. `encore reconnect`; `encore status --json` polled every 50 ms until
#      every volume is "connected" with 0 CML records (bounded by
#      REINT_TIMEOUT): the time from the reconnect command to "all
#      reintegrated", and records/s = CML records / that time;
#   4. through client 2: every file of both trees is there with the right
#      content, and `encore conflicts --json` on client 1 lists nothing.
# Ratio: reintegration time / connected-create time of the same tree.
# Writes docs/bench/<date>-reint.md (or $OUT) and the raw figures as JSON in
# docs/bench/<date>-reint.json.
#
# Usage (root, from the repository root):  bench/reint.sh
# Environment: BENCH_WORK=/var/tmp/encore-reint; DIRS=100 FILES=100 KB=1;
#   REINT_TIMEOUT=900 (seconds); ENCORE_BIN=build/bin
set -euo pipefail
cd "$(dirname "$0")/.."
work=${BENCH_WORK:-/var/tmp/encore-reint}
bin=${ENCORE_BIN:-build/bin}
enc=$bin/encore
stamp=$(date -u +%Y-%m-%d)
out=${OUT:-docs/bench/$stamp-reint.md}
[ -x "$enc" ] || make -j2 all
load0=$(cut -d' ' -f1-3 /proc/loadavg)
date0=$(date -u '+%Y-%m-%d %H:%M UTC')
commit=$(git -C "$bin" rev-parse --short HEAD 2>/dev/null || echo unknown)  # of the binaries run
mkdir -p "$work" "$(dirname "$out")"

cleanup() {
	timeout 120 "$enc" local down --dir "$work/realm" >/dev/null 2>&1 || true
}
trap cleanup EXIT
rc=0
timeout 120 "$enc" local down --dir "$work/realm" >/dev/null 2>&1 || true
rm -rf "$work/realm"
timeout 120 "$enc" local up --dir "$work/realm" --servers 3 --clients 2 --cache-size 4096 >&2

ENC="$enc" DIR="$work/realm" NDIRS="${DIRS:-100}" NFILES="${FILES:-100}" KB="${KB:-1}" \
	TMO="${REINT_TIMEOUT:-900}" LOAD0="$load0" DATE0="$date0" COMMIT="$commit" \
	JSON="${out%.md}.json" /usr/bin/python3 - > "$out" <<'EOF' || rc=$?
import json, os, subprocess, sys, time
enc, d = os.environ["ENC"], os.environ["DIR"]
nd, nf, kb, tmo = int(os.environ["NDIRS"]), int(os.environ["NFILES"]), int(os.environ["KB"]), float(os.environ["TMO"])
def log(*a):
    print(*a, file=sys.stderr, flush=True)
def run(*a, t=60):
    r = subprocess.run(list(a), capture_output=True, text=True, timeout=t)
    if r.returncode:
        raise SystemExit("%s: exit %d: %s" % (" ".join(a), r.returncode, r.stderr.strip()))
    return r.stdout
st = json.loads(run(enc, "local", "status", "--dir", d, "--json"))
m1 = st["clients"][0]["mount"] + "/local"
m2 = st["clients"][1]["mount"] + "/local"
def status():
    return json.loads(run(enc, "status", "--json", m1, t=30))
def content(tree, i, j):
    s = ("%s/d%03d/f%03d " % (tree, i, j)).encode()
    return (s * (kb * 1024 // len(s) + 1))[:kb * 1024]
def create(tree):
    t0 = time.monotonic()
    os.mkdir(m1 + "/" + tree)
    for i in range(nd):
        os.mkdir("%s/%s/d%03d" % (m1, tree, i))
        for j in range(nf):
            with open("%s/%s/d%03d/f%03d" % (m1, tree, i, j), "wb") as f:
                f.write(content(tree, i, j))
    return time.monotonic() - t0
def verify(tree):
    bad = []
    for i in range(nd):
        p = "%s/%s/d%03d" % (m2, tree, i)
        try:
            names = set(os.listdir(p))
        except OSError as e:
            bad.append("%s: %s" % (p, e)); continue
        want = {"f%03d" % j for j in range(nf)}
        for n in sorted(want - names):
            bad.append("%s/%s missing" % (p, n))
        for n in sorted(names - want):
            bad.append("%s/%s unexpected" % (p, n))
        for j in range(nf):
            if "f%03d" % j not in names:
                continue
            try:
                with open("%s/f%03d" % (p, j), "rb") as f:
                    if f.read() != content(tree, i, j):
                        bad.append("%s/f%03d wrong content" % (p, j))
            except OSError as e:
                bad.append("%s/f%03d: %s" % (p, j, e))
    return bad
n = nd * nf
log("connected creates of %d files" % n)
t_conn = create("conn")
log("  %.1f s" % t_conn)
os.listdir(m1)  # the root's listing must be cached to create in it offline
run(enc, "disconnect", "--json", m1)
log("disconnected creates")
t_disc = create("disc")
s = status()
vols = s["volumes"]
cml = sum(v["cml_records"] for v in vols)
cmlb = sum(v["cml_bytes"] for v in vols)
log("  %.1f s, CML %d records, %d bytes, states %s" % (t_disc, cml, cmlb, [v["state"] for v in vols]))
t0 = time.monotonic()
run(enc, "reconnect", "--json", m1)
t_cmd = time.monotonic() - t0
done, last, samples = None, None, []
while time.monotonic() - t0 < tmo:
    try:
        vols = status()["volumes"]
    except (SystemExit, subprocess.TimeoutExpired, ValueError) as e:
        log("status failed: %s" % e); time.sleep(0.5); continue
    left = sum(v["cml_records"] for v in vols)
    states = sorted({v["state"] for v in vols})
    el = time.monotonic() - t0
    if last is None or left != last[0] or states != last[1]:
        samples.append((round(el, 2), left, states)); last = (left, states)
        log("  %.2f s: %d records left, %s" % (el, left, states))
    if left == 0 and states == ["connected"]:
        done = el; break
    time.sleep(0.05)
conflicts = json.loads(run(enc, "conflicts", "--json", m1))
bad_conn = verify("conn")
bad_disc = verify("disc") if done is not None else ["not reintegrated within %.0f s" % tmo]
thin, lastt = [], -1.0  # one progress sample per second in the JSON
for smp in samples:
    if smp[0] - lastt >= 1.0 or smp is samples[-1]:
        thin.append(smp); lastt = smp[0]
res = {"files": n, "kb": kb, "connected_create_s": round(t_conn, 2), "disconnected_create_s": round(t_disc, 2),
       "cml_records": cml, "cml_bytes": cmlb, "reconnect_cmd_s": round(t_cmd, 3),
       "reintegrated_s": None if done is None else round(done, 2),
       "records_per_s": None if not done else round(cml / done, 1),
       "files_per_s_reint": None if not done else round(n / done, 1),
       "files_per_s_connected": round(n / t_conn, 1),
       "ratio_reint_vs_connected": None if not done else round(t_conn / done, 2),
       "progress": thin, "conflicts": conflicts,
       "bad_conn": bad_conn[:50], "bad_conn_count": len(bad_conn),
       "bad_disc": bad_disc[:50], "bad_disc_count": len(bad_disc)}
json.dump(res, open(os.environ["JSON"], "w"), indent=1)
ok = done is not None and not bad_conn and not bad_disc
print("# Reintegration benchmark, %s" % time.strftime("%Y-%m-%d", time.gmtime()))
print()
print("bench/reint.sh: 3 replicas, 2 clients, all on this machine (loopback TCP). Through")
print("client 1: %d dirs x %d files x %d KiB created connected (baseline), then the same" % (nd, nf, kb))
print("tree created after `encore disconnect`, then `encore reconnect` and `encore status")
print("--json` polled every 50 ms until every volume is connected with 0 CML records.")
print("Both trees then read back through client 2 (names and content).")
print()
print("Machine: %d cores, %s, Debian 12. Started %s, commit %s (binaries); load average at" % (
    os.cpu_count(), os.uname().release, os.environ["DATE0"], os.environ["COMMIT"]))
print("start: %s, at the end: %s. The machine was shared: other engineers ran builds and" % (
    os.environ["LOAD0"], " ".join(open("/proc/loadavg").read().split()[:3])))
print("test suites during the run.")
print()
print("| figure | value |")
print("|---|---|")
print("| connected creates (baseline), %d files | %.1f s (%.0f files/s) |" % (n, t_conn, n / t_conn))
print("| disconnected creates (emulation + CML) | %.1f s (%.0f files/s) |" % (t_disc, n / t_disc))
print("| CML after the disconnected creates | %d records, %d bytes |" % (cml, cmlb))
if done is not None:
    print("| reconnect to all reintegrated | %.1f s |" % done)
    print("| reintegration rate | **%.0f records/s** (%.0f files/s) |" % (cml / done, n / done))
    print("| connected-create time / reintegration time | **%.2fx** |" % (t_conn / done))
else:
    print("| reconnect to all reintegrated | **not within %.0f s** |" % tmo)
print("| files checked through client 2 | %d bad in the connected tree, %d bad in the disconnected tree |" % (len(bad_conn), len(bad_disc)))
print("| conflicts listed | %d |" % len(conflicts.get("conflicts", conflicts) if isinstance(conflicts, dict) else conflicts))
print()
print("Progress (seconds after the reconnect, records left, states): " +
      "; ".join("%.0f %d %s" % (a, b, "/".join(c)) for a, b, c in thin[::max(1, len(thin) // 25)] + thin[-1:]))
if bad_conn or bad_disc:
    print()
    print("**Data check failed**; first problems:")
    for b in (bad_conn + bad_disc)[:20]:
        print("- " + b)
sys.exit(0 if ok else 1)
EOF
cat "$out"
exit $rc
