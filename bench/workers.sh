#!/usr/bin/env bash
# Scale-out benchmark: the same snapshot (and restore) taken by 1, 2 and 3
# worker processes (`--workers NAME`) on this machine, side by side in one
# run. For each N it reports the wall time and the CPU seconds of all
# workers together, per GiB of record bytes. On 2 cores the wall time
# cannot scale much; what must hold is that N workers spend about the CPU
# one worker spends (the coordination is cheap). docs/benchmarks.md has the
# results and the model for N hosts.
#
#   bench/workers.sh [GIB] [PARTITIONS] [--no-restore]
#     defaults: 1 GiB of 1 KiB JSON records, 24 partitions.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
restore=1
positional=()
for a in "$@"; do
  case "$a" in
    --no-restore) restore=0 ;;
    *) positional+=("$a") ;;
  esac
done
gib=${positional[0]:-1}
parts=${positional[1]:-24}
source "$repo/bench/lib.sh"
bench_setup kcat python3
brokers=$src
target=$dst
topic=bench-${gib}g-${parts}p
records=$((gib * 1024 * 1024))
if ! kcat -b "$brokers" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
  echo "bench: filling $topic with $records records of 1 KiB" >&2
  "$repo/bench/create-topic.sh" "$brokers" "$topic" "$parts"
  python3 "$repo/bench/gen_records.py" "$records" | kcat -P -b "$brokers" -t "$topic" -K $'\t' -z lz4 \
    -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576
fi
pw=$work/pw; echo "bench passphrase" > "$pw"

# Runs N copies of a command at once; prints "wall_seconds cpu_seconds peak_rss_kib"
# (cpu summed over the copies, rss the largest).
together() {
  local n=$1 label=$2; shift 2
  local start; start=$(date +%s.%N)
  local pids=()
  for i in $(seq 1 "$n"); do
    /usr/bin/time -f "%e %M %U %S" -o "$work/$label.$i.time" bash -c "$*" > "$work/$label.$i.out" 2> "$work/$label.$i.err" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do
    wait "$p" || { echo "bench: a worker failed:" >&2; cat "$work/$label".*.err >&2; exit 1; }
  done
  local end; end=$(date +%s.%N)
  cat "$work/$label".*.time | awk -v s="$start" -v e="$end" \
    '{ cpu += $3 + $4; if ($2 > rss) rss = $2 } END { printf "%.1f %.1f %d\n", e - s, cpu, rss }'
}

bytes_read=0
echo "| workers | snapshot wall s | snapshot CPU s | CPU s/GiB | vs 1 worker | peak RSS MiB (one worker) | restore wall s | restore CPU s | CPU s/GiB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
base=
for n in 1 2 3; do
  v=$work/vault-$n
  rm -rf "$v" "$work/cache-$n"
  export KVAULT_CACHE_DIR=$work/cache-$n
  "$vault" init --vault "$v" --password-file "$pw" >&2
  run=bench-$n-$$
  read -r wall cpu rss < <(together "$n" "snap$n" \
    "$vault snapshot --vault $v --password-file $pw --brokers $brokers --topics $topic --workers $run --json")
  bytes_read=$("$vault" snapshots --vault "$v" --password-file "$pw" --json \
    | python3 -c 'import json,sys; print(sum(s["bytes"] for s in json.load(sys.stdin)))')
  gibs=$(awk -v b="$bytes_read" 'BEGIN { printf "%.4f", b / 1073741824 }')
  per=$(awk -v c="$cpu" -v g="$gibs" 'BEGIN { printf "%.2f", c / g }')
  base=${base:-$per}
  ratio=$(awk -v p="$per" -v b="$base" 'BEGIN { printf "%.2fx", p / b }')
  rw=-; rc=-; rper=-
  if [ "$restore" = 1 ]; then
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/snap$n.1.out")
    dst=$topic-restored-$n-$$
    read -r rw rc _ < <(together "$n" "rest$n" \
      "$vault restore --vault $v --password-file $pw --brokers $target --snapshot-id $id --rename $topic=$dst --consumer-groups none --workers r$run --json")
    rper=$(awk -v c="$rc" -v g="$gibs" 'BEGIN { printf "%.2f", c / g }')
  fi
  echo "| $n | $wall | $cpu | $per | $ratio | $((rss / 1024)) | $rw | $rc | $rper |"
done
echo
echo "record bytes per snapshot: $bytes_read ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
