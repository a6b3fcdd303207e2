#!/usr/bin/env bash
# bench/scale.sh - scale figures for the foundation issue:
#   * server restart time (start to ready) with ~10 objects and with N objects
#     (default 100,000): must not grow, since the server does no scan on start;
#   * RSS of encore-server and encore-client with N cached objects.
# Writes docs/bench/<date>-scale.md. Usage (root, repo root): bench/scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
work=${BENCH_WORK:-/var/tmp/encore-bench}/scale
enc=build/bin/encore
stamp=$(date -u +%Y-%m-%d)
out=docs/bench/$stamp-scale.md
mkdir -p docs/bench
[ -x $enc ] || make -j2 all
$enc local down --dir "$work" >/dev/null 2>&1 || true
rm -rf "$work"
trap '$enc local down --dir "$work" >/dev/null 2>&1 || true' EXIT
$enc local up --dir "$work" --servers 1 --cache-size 8192 >/dev/null
status() { $enc local status --dir "$work" --json; }
field() { status | /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }
mnt=$(field 's["mount"]')/local

restart_ms() { # median of 5 restarts of server 1, start to ready
	for _ in 1 2 3 4 5; do
		$enc local stop-server --dir "$work" 1 >/dev/null
		t0=$(date +%s%N)
		$enc local start-server --dir "$work" 1 >/dev/null
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000000))
	done | sort -n | sed -n 3p
}
rss_kb() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
# After a server restart the client notices it with its next probe: wait
# (bounded) until the mount answers again.
wait_mount() {
	for _ in $(seq 300); do ls "$mnt" >/dev/null 2>&1 && return 0; sleep 0.1; done
	echo "scale.sh: the mount did not come back after the restarts" >&2; return 1
}

for i in $(seq 10); do echo "$i" > "$mnt/f$i"; done
r10=$(restart_ms)
wait_mount
echo "creating $n files ..." >&2
/usr/bin/python3 - "$mnt" "$n" <<'PY'
import os, sys
mnt, n = sys.argv[1], int(sys.argv[2])
per = 1000
for i in range(n):
    d = os.path.join(mnt, "d%03d" % (i // per))
    if i % per == 0:
        os.mkdir(d)
        sys.stderr.write("\r%d/%d" % (i, n)); sys.stderr.flush()
    with open(os.path.join(d, "f%d" % i), "w") as f:
        f.write("x")
sys.stderr.write("\n")
PY
echo "reading them back (cached objects) ..." >&2
/usr/bin/python3 - "$mnt" "$n" <<'PY'
import os, sys
mnt, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    with open(os.path.join(mnt, "d%03d" % (i // 1000), "f%d" % i)) as f:
        assert f.read() == "x"
PY
spid=$(field 's["servers"][0]["pid"]'); cpid=$(field 's["client_pid"]')
srss=$(rss_kb "$spid"); crss=$(rss_kb "$cpid")
rN=$(restart_ms)
wait_mount
{
	echo "# Scale figures, $stamp"
	echo
	echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)."
	echo
	echo "| figure | value |"
	echo "|---|---|"
	echo "| server restart, 10 objects (median of 5, start to ready) | $r10 ms |"
	echo "| server restart, $n objects (median of 5) | $rN ms |"
	echo "| encore-server RSS with $n objects | $((srss / 1024)) MiB |"
	echo "| encore-client RSS with $n cached objects | $((crss / 1024)) MiB |"
} > "$out"
cat "$out"
