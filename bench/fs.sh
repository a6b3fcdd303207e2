#!/usr/bin/env bash
# bench/fs.sh - the foundation benchmark: the shared fsbench harness on a
# native directory, on a libfuse passthrough_ll mount (the cost of FUSE
# alone) and on an Encore mount (encore local up, 1 server), in the same run,
# ROUNDS rounds alternating. Writes JSON lines and a Markdown table
# (ratios to native) under docs/bench/.
#
# Usage (root, from the repository root):  bench/fs.sh [ROUNDS]
# Environment: FSB_QUICK=1 etc. are passed to fsbench (see ../shared/bench);
#   BENCH_WORK=/var/tmp/encore-bench   where the native/passthrough data live
#   BENCH_LABELS="native passthrough encore"   which columns to run
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
top=$(pwd)
shared=${SHARED_BENCH:-$top/../shared/bench}
work=${BENCH_WORK:-/var/tmp/encore-bench}
labels=${BENCH_LABELS:-native passthrough encore}
stamp=$(date -u +%Y-%m-%d)
out=docs/bench/$stamp-fs
mkdir -p "$out" build/bench "$work"
[ -x build/bin/encore ] || make -j2 all

# passthrough_ll from the examples Debian's libfuse3-dev ships.
pt_src=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
if [ ! -x build/bench/passthrough_ll ]; then
	cp "$pt_src" build/bench/ 2>/dev/null || { zcat "$pt_src.gz" > build/bench/passthrough_ll.c; }
	cp /usr/share/doc/libfuse3-dev/examples/passthrough_helpers.h build/bench/ 2>/dev/null || true
	gcc -O2 -Wall build/bench/passthrough_ll.c $(pkg-config --cflags --libs fuse3) -o build/bench/passthrough_ll
fi

cleanup() {
	fusermount3 -u "$work/pt-mnt" 2>/dev/null || true
	build/bin/encore local down --dir "$work/realm" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$work/native" "$work/pt-src" "$work/pt-mnt"
build/bench/passthrough_ll -f -o source="$work/pt-src" "$work/pt-mnt" &
pt_pid=$!
for _ in $(seq 50); do grep -q " $work/pt-mnt " /proc/mounts && break; sleep 0.1; done
build/bin/encore local down --dir "$work/realm" >/dev/null 2>&1 || true
build/bin/encore local up --dir "$work/realm" --servers 1 --cache-size 4096
emnt=$(build/bin/encore local status --dir "$work/realm" --json |
	/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["mount"])')/local
epids=$(build/bin/encore local status --dir "$work/realm" --json |
	/usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print(" ".join(str(x["pid"]) for x in s["clients"]+s["servers"]))')

for r in $(seq "$rounds"); do
	for l in $labels; do
		case $l in
		native) d=$work/native; pids="" ;;
		passthrough) d=$work/pt-mnt; pids=$pt_pid ;;
		encore) d=$emnt; pids=$epids ;;
		esac
		echo "== round $r: $l" >&2
		FSB_RUN=$r FSB_PIDS="$pids" "$shared/fsbench.sh" "$d" "$l" >> "$out/$l.jsonl"
	done
done

{
	echo "# File-system benchmark, $stamp"
	echo
	echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
	echo "Rounds: $rounds, alternating; medians. Ratios are to native (same disk)."
	echo "FSB_QUICK=${FSB_QUICK:-0}."
	echo
	/usr/bin/python3 "$shared/summarize.py" --base native $(for l in $labels; do echo "$out/$l.jsonl"; done)
} > "$out/table.md"
cat "$out/table.md"
