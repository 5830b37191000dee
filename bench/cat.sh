#!/usr/bin/env bash
# `vault cat` seek benchmark: one record near the end of a 1 GiB snapshot,
# found through the tree's offset (and time) ranges rather than by reading
# from the start. Reports the wall time of a cold run (fresh cache dir:
# the index is loaded first) and of warm runs, next to reading the whole
# partition, in one run.
#
#   bench/cat.sh [GIB] [PARTITIONS]    defaults: 1 GiB of 1 KiB records, 8 partitions
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gib=${1:-1}
parts=${2:-8}
source "$repo/bench/lib.sh"
bench_setup
brokers=$src
topic=bench-${gib}g-${parts}p
records=$((gib * 1024 * 1024))
if ! kcat -b "$brokers" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
  echo "bench: filling $topic with $records records of 1 KiB" >&2
  "$repo/bench/create-topic.sh" "$brokers" "$topic" "$parts"
  python3 "$repo/bench/gen_records.py" "$records" | kcat -P -b "$brokers" -t "$topic" -K $'\t' -z lz4 \
    -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576
fi
pw=$work/pw; echo "bench passphrase" > "$pw"
v=$work/vault-cat
if [ ! -f "$v/config" ]; then
  "$vault" init --vault "$v" --password-file "$pw" >&2
  KVAULT_CACHE_DIR=$work/cache-cat "$vault" snapshot --vault "$v" --password-file "$pw" \
    --brokers "$brokers" --topics "$topic" --json > "$work/cat-snap.json"
fi
last=$("$vault" ls latest --vault "$v" --password-file "$pw" --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["topics"][0]["partitions"][0]["last_offset"])')
seconds() { # command...: wall seconds
  local s e; s=$(date +%s.%N); "$@" > "$work/cat.out"; e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'
}
cat_last() {
  "$vault" cat latest --vault "$v" --password-file "$pw" --topic "$topic" --partition 0 \
    --from-offset "$last" --limit 1
}
cold=$(KVAULT_CACHE_DIR=$work/cache-cold-$$ seconds cat_last)
lines=$(wc -l < "$work/cat.out")
warm1=$(KVAULT_CACHE_DIR=$work/cache-cat seconds cat_last)
warm2=$(KVAULT_CACHE_DIR=$work/cache-cat seconds cat_last)
whole=$(KVAULT_CACHE_DIR=$work/cache-cat seconds "$vault" cat latest --vault "$v" --password-file "$pw" \
  --topic "$topic" --partition 0)
echo "| read | wall s |"
echo "| --- | --- |"
echo "| one record at offset $last of partition 0, fresh cache | $cold |"
echo "| the same, warm cache | $warm1 / $warm2 |"
echo "| all of partition 0 ($((last + 1)) records) | $whole |"
echo "records printed by the seek: $lines"
