#!/usr/bin/env bash
# gc and check memory on a vault of at least a million chunks.
#   A vault with 1 KiB average chunks (`vault init --avg-chunk-kib 1`) takes
#   a snapshot of the 1 GiB benchmark topic (bench/snapshot.sh fills it):
#   about a million data chunks plus their tree nodes. Then, measuring time
#   and peak RSS of each:
#     1. vault gc --keep-last 1 with everything live (marks every chunk);
#     2. vault check --read-data-subset 10%;
#     3. a second snapshot of another topic, then vault forget of the first
#        and vault gc, which frees the million chunks.
# Prints a markdown table for docs/benchmarks.md.
#
#   bench/gc.sh [GIB] [PARTITIONS]     defaults: 1 GiB, 8 partitions
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gib=${1:-1}
parts=${2:-8}
source "$repo/bench/lib.sh"
bench_setup
topic=bench-${gib}g-${parts}p
records=$((gib * 1024 * 1024))
if ! kcat -b "$src" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
  echo "bench: filling $topic with $records records of 1 KiB" >&2
  "$repo/bench/create-topic.sh" "$src" "$topic" "$parts"
  python3 "$repo/bench/gen_records.py" "$records" | kcat -P -b "$src" -t "$topic" -K $'\t' -z lz4 \
    -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576
fi
small=bench-gc-small
"$repo/bench/create-topic.sh" "$src" "$small" 1
python3 "$repo/bench/gen_records.py" 1000 | kcat -P -b "$src" -t "$small" -K $'\t' 2>/dev/null

pw=$work/pw; echo "bench passphrase" > "$pw"
export KVAULT_CACHE_DIR=$work/cache KVAULT_PASSWORD_FILE=$pw
rm -rf "$work/gcvault" "$work/cache"
"$vault" init --vault "$work/gcvault" --avg-chunk-kib 1 >&2

timeit() { # label, command...: prints "seconds peak_rss_kib"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$label.time" bash -c "$*" >&2
  cat "$work/$label.time"
}
read -r t_snap rss_snap < <(timeit snap "$vault snapshot --vault $work/gcvault --brokers $src --topics $topic --json > $work/snap.json")
chunks=$(python3 -c "import json;print(json.load(open('$work/snap.json'))['chunks_added'])")
read -r t_gc1 rss_gc1 < <(timeit gc1 "$vault gc --vault $work/gcvault --keep-last 1 --json > $work/gc1.json")
read -r t_check rss_check < <(timeit check "$vault check --vault $work/gcvault --read-data-subset 10% --json > $work/check.json")
first=$(python3 -c "import json;print(json.load(open('$work/snap.json'))['id'])")
"$vault" snapshot --vault "$work/gcvault" --brokers "$src" --topics "$small" --json >/dev/null
"$vault" forget --vault "$work/gcvault" "$first" >&2
size_before=$(du -sb "$work/gcvault" | cut -f1)
read -r t_gc2 rss_gc2 < <(timeit gc2 "$vault gc --vault $work/gcvault --keep-last 1 --json > $work/gc2.json")
size_after=$(du -sb "$work/gcvault" | cut -f1)
live=$(python3 -c "import json;print(json.load(open('$work/gc1.json'))['live_chunks'])")
python3 - "$chunks" "$live" "$t_snap" "$rss_snap" "$t_gc1" "$rss_gc1" "$t_check" "$rss_check" "$t_gc2" "$rss_gc2" "$size_before" "$size_after" <<'PY'
import sys
chunks, live, ts, rs, t1, r1, tc, rc, t2, r2, sb, sa = sys.argv[1:]
mib = lambda k: f"{int(k)/1024:.0f}"
print(f"vault: {int(chunks):,} chunks written by the snapshot, {int(live):,} live chunks marked by gc")
print()
print("| step | time (s) | peak RSS (MiB) |")
print("|---|---|---|")
print(f"| vault snapshot (1 KiB chunks) | {float(ts):.1f} | {mib(rs)} |")
print(f"| vault gc --keep-last 1, all live (marks every chunk) | {float(t1):.1f} | {mib(r1)} |")
print(f"| vault check --read-data-subset 10% | {float(tc):.1f} | {mib(rc)} |")
print(f"| vault gc after forgetting it (frees every chunk) | {float(t2):.1f} | {mib(r2)} |")
print()
print(f"vault size before the last gc: {int(sb)/2**20:.0f} MiB, after: {int(sa)/2**20:.1f} MiB")
PY
