#!/usr/bin/env bash
# End-to-end restore benchmark, side by side in one run, into the local
# target cluster (scripts/kafka start):
#   1. vault restore of the step-3 benchmark topic (1 GiB of 1 KiB records,
#      8 partitions) from a vault snapshot into a new target topic;
#   2. kcat -P producing the same records from a file into another new
#      target topic, with the same batching and compression (lz4).
# Prints a markdown table for docs/benchmarks.md. Times on a shared 2-core
# machine are noise; read the ratio between the two tools of one run.
#
#   bench/restore.sh [GIB] [PARTITIONS]     defaults: 1 GiB, 8 partitions
#
#   bench/restore.sh leaves [GIB]
#     Restore memory against the number of leaves: GIB of small records
#     (200-800 B, two headers) snapshotted into a vault with the default
#     64 KiB chunks (the default before 256 KiB) and into one with --avg-chunk-kib 1 (about a million
#     leaves per GiB), each restored; prints both peak RSS figures.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=throughput
if [ "${1:-}" = leaves ]; then
  mode=leaves
  shift
fi
gib=${1:-1}
parts=${2:-8}
source "$repo/bench/lib.sh"
bench_setup kcat python3

if [ "$mode" = leaves ]; then
  topic=bench-small-${gib}g-${parts}p
  records=$((gib * 1024 * 1024 * 1024 / 470))
  if [ ! -s "$work/small.tsv" ]; then
    python3 "$repo/bench/gen_small_records.py" "$records" > "$work/small.tsv"
  fi
  if ! kcat -b "$src" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
    echo "bench: filling $topic with $records small records" >&2
    "$repo/bench/create-topic.sh" "$src" "$topic" "$parts"
    kcat -P -b "$src" -t "$topic" -K $'\t' -z lz4 -H "service=checkout" -H "schema=access-log/v3" \
      -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576 < "$work/small.tsv"
  fi
  pw=$work/pw; echo "bench passphrase" > "$pw"
  export KVAULT_CACHE_DIR=$work/cache
  echo "| vault | chunks in the vault | restore time (s) | peak RSS (MiB) | records on target |"
  echo "|---|---|---|---|---|"
  for kib in 64 1; do
    v=$work/vault-$kib
    if [ ! -d "$v" ]; then
      "$vault" init --vault "$v" --password-file "$pw" --avg-chunk-kib "$kib" >&2
      "$vault" snapshot --vault "$v" --password-file "$pw" --brokers "$src" --topics "$topic" \
        --json > "$v.snapshot.json"
    fi
    chunks=$(python3 -c "import json; print(json.load(open('$v.snapshot.json'))['chunks_added'])")
    to=$topic-from-$kib-$(date +%s)
    /usr/bin/time -f "%e %M" -o "$work/leaves-$kib.time" "$vault" restore --vault "$v" --password-file "$pw" \
      --snapshot-id latest --brokers "$dst" --rename "$topic=$to" --topic-config retention.ms=-1 \
      --json > "$work/leaves-$kib.json"
    read -r t rss < "$work/leaves-$kib.time"
    n=$(kcat -C -b "$dst" -t "$to" -e -q -X isolation.level=read_committed -f '\n' | wc -l)
    echo "| --avg-chunk-kib $kib | $chunks | $t | $((rss / 1024)) | $n |"
  done
  echo "work dir: $work" >&2
  exit 0
fi
topic=bench-${gib}g-${parts}p
records=$((gib * 1024 * 1024))

# The same records twice: in a file for kcat, on the source for vault.
if [ ! -s "$work/records.tsv" ]; then
  python3 "$repo/bench/gen_records.py" "$records" > "$work/records.tsv"
fi
if ! kcat -b "$src" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
  echo "bench: filling $topic with $records records of 1 KiB" >&2
  "$repo/bench/create-topic.sh" "$src" "$topic" "$parts"
  kcat -P -b "$src" -t "$topic" -K $'\t' -z lz4 -X linger.ms=50 -X batch.size=1000000 \
    -X queue.buffering.max.kbytes=1048576 < "$work/records.tsv"
fi

pw=$work/pw; echo "bench passphrase" > "$pw"
export KVAULT_CACHE_DIR=$work/cache
if [ ! -d "$work/vault" ]; then
  "$vault" init --vault "$work/vault" --password-file "$pw" >&2
  "$vault" snapshot --vault "$work/vault" --password-file "$pw" --brokers "$src" --topics "$topic" --json >&2
fi

run=$(date +%s)
to_vault=$topic-restored-$run
to_kcat=$topic-kcat-$run
"$repo/bench/create-topic.sh" "$dst" "$to_kcat" "$parts"

timeit() { # label, command...: prints "seconds peak_rss_kib"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/$label.time" bash -c "$*" >&2
  cat "$work/$label.time"
}
read -r t_vault rss_vault < <(timeit vault "$vault restore --vault $work/vault --password-file $pw --snapshot-id latest --brokers $dst --rename $topic=$to_vault --topic-config retention.ms=-1 --json > $work/restore.json")
read -r t_kcat rss_kcat < <(timeit kcat "kcat -P -b $dst -t $to_kcat -K '\t' -z lz4 -X linger.ms=20 -X batch.size=1000000 -X queue.buffering.max.kbytes=65536 < $work/records.tsv")

count() { kcat -C -b "$dst" -t "$1" -e -q -X isolation.level=read_committed -f '\n' | wc -l; }
n_vault=$(count "$to_vault"); n_kcat=$(count "$to_kcat")
python3 - "$t_vault" "$t_kcat" "$rss_vault" "$rss_kcat" "$gib" "$n_vault" "$n_kcat" <<'PY'
import sys
tv, tk, rv, rk, gib, nv, nk = sys.argv[1:]
tv, tk = float(tv), float(tk)
mib = float(gib) * 1024
print("| tool | time (s) | MiB/s | speed vs kcat -P | peak RSS (MiB) | records on target |")
print("|---|---|---|---|---|---|")
print(f"| vault restore (transactional, lz4) | {tv:.1f} | {mib/tv:.0f} | {tk/tv:.2f}x | {int(rv)/1024:.0f} | {nv} |")
print(f"| kcat -P from a file (lz4) | {tk:.1f} | {mib/tk:.0f} | 1.00x | {int(rk)/1024:.0f} | {nk} |")
print()
print(f"vault restore / kcat -P speed ratio: {tk/tv:.2f}")
PY
echo "work dir: $work (the records file and vault are reused on the next run with KVAULT_BENCH_DIR=$work)" >&2
