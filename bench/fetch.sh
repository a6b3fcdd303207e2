#!/usr/bin/env bash
# bench/fetch.sh - first read of a file from the server (whole-file FETCH on
# open) against a native cold read of the same size on the same disk.
#
# Starts a realm (encore local up, 1 server, 2 clients), writes SIZE_MIB
# through client 1, then ROUNDS rounds alternating:
#   native: drop_caches, dd of a native file of the same size
#   encore: `encore flush` of the file on client 2's mount, drop_caches, dd
#           through client 2 (its cache is empty, so every byte comes from
#           the server)
# and reports MiB/s per round, medians, the ratio encore/native, and the CPU
# seconds (utime + stime from /proc/PID/stat) the server and client 2 spent
# during each encore read. Writes docs/bench/<date>-fetch.md (or $OUT).
#
# Usage (root, from the repository root):  bench/fetch.sh [ROUNDS]
# Environment: BENCH_WORK=/var/tmp/encore-fetch  where the realm and the
#   native file live;  SIZE_MIB=1024;  OUT=docs/bench/<date>-fetch.md;
#   LABEL=text  a note on what was measured (e.g. the commit or "before");
#   ENCORE_BIN=build/bin  where encore, encore-server, encore-client are
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
work=${BENCH_WORK:-/var/tmp/encore-fetch}
size=${SIZE_MIB:-1024}
stamp=$(date -u +%Y-%m-%d)
out=${OUT:-docs/bench/$stamp-fetch.md}
label=${LABEL:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
enc=${ENCORE_BIN:-build/bin}/encore
[ -x "$enc" ] || make -j2 all
[ "$(id -u)" = 0 ] || { echo "fetch.sh: needs root (drop_caches)" >&2; exit 2; }

cleanup() {
	"$enc" local down --dir "$work/realm" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$work"
"$enc" local down --dir "$work/realm" >/dev/null 2>&1 || true
rm -rf "$work/realm"
"$enc" local up --dir "$work/realm" --servers 1 --clients 2 --cache-size $((size * 3)) >&2
status=$("$enc" local status --dir "$work/realm" --json)
field() { /usr/bin/python3 -c "import json,sys; s=json.load(sys.stdin); print($1)" <<<"$status"; }
mnt1=$(field 's["clients"][0]["mount"]')/local
mnt2=$(field 's["clients"][1]["mount"]')/local
cpid=$(field 's["clients"][1]["pid"]')
spid=$(field 's["servers"][0]["pid"]')

# Test data: one random file, native copy and Encore copy (written through
# client 1, so it is stored on the server when cp's close returns).
if [ ! -f "$work/native.dat" ] || [ "$(stat -c %s "$work/native.dat")" != $((size << 20)) ]; then
	dd if=/dev/urandom of="$work/native.dat" bs=1M count="$size" status=none
fi
cp "$work/native.dat" "$mnt1/fetch.dat"
sync

# CPU seconds (utime + stime) of a process.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
# Seconds a sequential read of $1 takes (after the caller dropped caches).
readtime() {
	local t0 t1
	t0=$(date +%s.%N)
	dd if="$1" of=/dev/null bs=1M status=none
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

rows=()
for r in $(seq "$rounds"); do
	drop
	tn=$(readtime "$work/native.dat")
	# The kernel releases the handle of the previous read asynchronously:
	# retry the flush until nothing is busy.
	for _ in $(seq 50); do
		busy=$("$enc" flush --json "$mnt2/fetch.dat" |
			/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["busy"])')
		[ "$busy" = 0 ] && break
		sleep 0.1
	done
	drop
	s0=$(cpu "$spid"); c0=$(cpu "$cpid")
	te=$(readtime "$mnt2/fetch.dat")
	s1=$(cpu "$spid"); c1=$(cpu "$cpid")
	row=$(printf '%s %.0f %.0f %.2f %.2f %.2f' "$r" "$(echo "$size / $tn" | bc -l)" \
		"$(echo "$size / $te" | bc -l)" "$(echo "$tn / $te" | bc -l)" \
		"$(echo "$s1 - $s0" | bc -l)" "$(echo "$c1 - $c0" | bc -l)")
	echo "round $row" >&2
	rows+=("$row")
done
cmp "$work/native.dat" "$mnt2/fetch.dat" || { echo "fetch.sh: data differs" >&2; exit 1; }

med() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { printf '%s\n' "${rows[@]}" | awk -v c="$1" '{ print $c }' | med; }
mkdir -p "$(dirname "$out")"
{
	echo "# First read from the server, $stamp ($label)"
	echo
	echo "bench/fetch.sh: $size MiB file, written through client 1, read with"
	echo "dd bs=1M through client 2 after \`encore flush\` and drop_caches (every"
	echo "byte is fetched from the server, loopback TCP), against dd of a native"
	echo "file of the same size on the same disk after drop_caches. Rounds"
	echo "alternate; CPU = utime + stime of the daemon during the encore read."
	echo
	echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
	echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	echo "| round | native MiB/s | encore MiB/s | encore / native | server CPU s | client CPU s |"
	echo "|---|---|---|---|---|---|"
	for row in "${rows[@]}"; do
		echo "| ${row// / | } |"
	done
	echo "| **median** | **$(col 2)** | **$(col 3)** | **$(col 4)x** | **$(col 5)** | **$(col 6)** |"
} > "$out"
cat "$out"
