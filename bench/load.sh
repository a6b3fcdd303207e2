#!/usr/bin/env bash
# bench/load.sh - the load figures of the scale issue: one encore-server held
# by N concurrent connections (default 1000) doing GETATTR and small FETCH
# calls back to back (tests/tools/encore-load.c), with 1 connection as the
# baseline in the same invocation, while a normal client
# (tests/tools/encore-probe.c) does a GETATTR 10 times a second on its own
# connection and records its latency: the server must stay responsive.
# Also records the server's RSS idle and at peak under the load.
#
# Writes docs/bench/<date>-load.md. Usage (repo root or anywhere):
#   bench/load.sh            # 1000 connections, 20 s per run
#   CONNS=2000 SECS=30 bench/load.sh
# Builds into build/bench (never build/bin). Runs a bare server (no FUSE
# needed) on 127.0.0.1 port 0 under ${BENCH_WORK:-/var/tmp/encore-bench}/load
# and stops only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${CONNS:-1000}
secs=${SECS:-20}
size=${SIZE:-4096}
bin=build/bench/bin
work=${BENCH_WORK:-/var/tmp/encore-bench}/load
stamp=$(date -u +%Y-%m-%d)
out=docs/bench/$stamp-load.md
[ "$secs" -ge 5 ] || { echo "load.sh: SECS must be at least 5" >&2; exit 2; }

make -s OBJ=build/bench BIN=$bin $bin/encore-server $bin/encore-load $bin/encore-probe >&2

srv_pid=
stop_server() {
	if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
		kill -TERM "$srv_pid"
		wait "$srv_pid" || true
	fi
	srv_pid=
}
trap stop_server EXIT

rm -rf "$work"
mkdir -p "$work" docs/bench
$bin/encore-server init --dir "$work/srv" --server-id 1 --realm local
$bin/encore-server --dir "$work/srv" --listen 127.0.0.1:0 --port-file "$work/port" \
	>"$work/server.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do
	[ -s "$work/port" ] && break
	sleep 0.1
done
[ -s "$work/port" ] || { echo "load.sh: server did not start, see $work/server.log" >&2; exit 1; }
addr=127.0.0.1:$(cat "$work/port")

val() { awk -F'\t' -v k="$1" '$1 == k { print $2 }' "$2"; }
rss_kb() { awk -v k="$1:" '$1 == k { print $2 }' /proc/$srv_pid/status; }

# One run: load with $1 connections for $secs s, the probe next to it. The
# probe waits until the server holds all of the load's connections (plus its
# own) and measures for secs - 2 s, inside the load's measuring window.
# Samples the server's RSS every 0.5 s; the peak goes to $work/rss.$1.
run() {
	local n=$1
	$bin/encore-load --server "$addr" --conns "$n" --seconds "$secs" --size "$size" \
		>"$work/load.$n" 2>"$work/load.$n.err" &
	local lpid=$!
	$bin/encore-probe --server "$addr" --seconds $((secs - 2)) --wait-conns $((n + 1)) \
		>"$work/probe.$n" 2>"$work/probe.$n.err" &
	local ppid=$!
	local peak=0 r
	while kill -0 "$lpid" 2>/dev/null; do
		r=$(rss_kb VmRSS)
		[ "$r" -gt "$peak" ] && peak=$r
		sleep 0.5
	done
	echo "$peak" >"$work/rss.$n"
	local lrc=0 prc=0
	wait "$lpid" || lrc=$?
	wait "$ppid" || prc=$?
	echo "$lrc $prc" >"$work/rc.$n"
	echo "load.sh: $n connection(s): load exit $lrc, probe exit $prc" >&2
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load.sh: idle probe (5 s) ..." >&2
$bin/encore-probe --server "$addr" --seconds 5 >"$work/probe.idle" 2>"$work/probe.idle.err" ||
	echo "load.sh: idle probe failed, see $work/probe.idle.err" >&2
rss_idle=$(rss_kb VmRSS)
echo "load.sh: baseline, 1 connection, ${secs} s ..." >&2
run 1
echo "load.sh: $conns connections, ${secs} s ..." >&2
run "$conns"
rss_hwm=$(rss_kb VmHWM)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
stop_server

tp1=$(val ops_per_sec "$work/load.1")
tpn=$(val ops_per_sec "$work/load.$conns")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
row() { # name, load output, probe output
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" \
		"$(val ops "$2")" "$(val ops_per_sec "$2")" "$(val errors "$2")" \
		"$(val p50_us "$2")" "$(val p99_us "$2")" "$(val max_us "$2")" \
		"$(val p50_us "$3")" "$(val p99_us "$3")" "$(val max_us "$3")"
}
{
	echo "# Load figures, $stamp"
	echo
	echo "One encore-server, N concurrent connections each doing GETATTR and FETCH"
	echo "($size-byte file) alternately, one call outstanding per connection"
	echo "(tests/tools/encore-load.c, 1 s warm-up, ${secs} s measured). Meanwhile a"
	echo "normal client (tests/tools/encore-probe.c) on its own connection does a"
	echo "GETATTR of the realm root 10 times a second. Produced by bench/load.sh."
	echo
	echo "- Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
	# shellcheck source=/dev/null
	echo "  $(free -g | awk '/Mem:/ {print $2}') GiB, Linux $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")."
	echo "  Load generator, probe and server share the machine (loopback TCP)."
	echo "- Commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- server common || echo ' (server/common had uncommitted changes)')."
	echo "- Load average before / after: $load_before / $load_after (other work on the"
	echo "  machine shows up here and in the numbers)."
	echo
	echo "| run | calls | calls/s | errors | p50 us | p99 us | max us | normal client p50 us | p99 us | max us |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	echo "| idle server (probe only) | - | - | - | - | - | - | $(val p50_us "$work/probe.idle") | $(val p99_us "$work/probe.idle") | $(val max_us "$work/probe.idle") |"
	row "1 connection (baseline)" "$work/load.1" "$work/probe.1"
	row "$conns connections" "$work/load.$conns" "$work/probe.$conns"
	echo
	echo "- Throughput ratio, $conns connections / 1: $(ratio "$tpn" "$tp1")."
	echo "- Normal client during the $conns-connection run: $(val calls "$work/probe.$conns") calls,"
	echo "  $(val errors "$work/probe.$conns") errors, $(val timeouts "$work/probe.$conns") timeouts (5 s),"
	echo "  server connections seen $(val server_connections "$work/probe.$conns")."
	echo "- Exit codes (load, probe): 1 connection $(cat "$work/rc.1"), $conns connections $(cat "$work/rc.$conns")."
	echo "- encore-server RSS: idle $((rss_idle / 1024)) MiB; peak sampled during the"
	echo "  1-connection run $(($(cat "$work/rss.1") / 1024)) MiB, during the $conns-connection run"
	echo "  $(($(cat "$work/rss.$conns") / 1024)) MiB; VmHWM $((rss_hwm / 1024)) MiB."
} >"$out"
cat "$out"
