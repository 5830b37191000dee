#!/usr/bin/env bash
# What ten thousand partitions cost, against ten: for each size, an estate
# of SIZE partitions (topics of 100 partitions each), a few small records
# in each, and a few hundred consumer groups with committed positions on
# the local source cluster (scripts/kafka start). Then, side by side:
#   1. vault snapshot into a new vault (cold), with its planning time
#      (KVAULT_PHASE_TIMES) and peak RSS;
#   2. the unchanged re-snapshot, the same way;
#   3. the broker's own batched calls for the same partitions: ListOffsets
#      of every partition (kafka-get-offsets, a JVM, its start included and
#      measured apart), and kcat -L (metadata only).
# Prints a markdown table for docs/benchmarks.md, and writes
# $work/partitions.tsv and a log-log plot, $work/partitions.png (gnuplot).
#
#   bench/partitions.sh [SIZE ...]   default: 1000 5000 10000
#     KVAULT_BENCH_RECORDS=N records per partition (default 20)
#     KVAULT_BENCH_GROUPS=N  consumer groups on the cluster (default 300)
#     KVAULT_BENCH_KEEP=1    keep the estates' topics (they slow every later
#                            test that lists all topics; deleted by default)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 5000 10000)
records=${KVAULT_BENCH_RECORDS:-20}
groups=${KVAULT_BENCH_GROUPS:-300}
source "$repo/bench/lib.sh"
bench_setup kcat gnuplot /usr/bin/time
cargo build --release --example make_estate >&2
estate_bin=$CARGO_TARGET_DIR/release/examples/make_estate
pw=$work/pw
echo "partitions-bench-passphrase" > "$pw"

# Seconds, from `date +%s.%N` stamps.
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$1" "$2"; }
# Peak RSS in MiB from a /usr/bin/time -v log.
peak_mib() { awk -F: '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$1"; }
# The phase mark's milliseconds from a KVAULT_PHASE_TIMES log.
phase_ms() { awk -v p="$2" 'index($0, p) { v = $2 } END { printf "%.0f", v }' "$1"; }

tsv=$work/partitions.tsv
printf 'partitions\tsnapshot_s\tplanning_s\tunchanged_s\tunchanged_planning_s\tget_offsets_s\tget_offsets_jvm_s\tkcat_L_s\tpeak_rss_mib\tunchanged_rss_mib\n' > "$tsv"
for size in "${sizes[@]}"; do
  topics=$(( (size + 99) / 100 ))
  prefix=bench-estate-$size
  echo "bench: estate of $size partitions ($topics topics), $records records each, $groups groups" >&2
  "$estate_bin" "$src" "$prefix" "$topics" 100 "$records" "$groups"
  v=$work/vault-$size
  rm -rf "$v"
  "$vault" init --vault "$v" --password-file "$pw" >/dev/null
  run_snapshot() { # LOG: one snapshot of the estate, timed
    local t0 t1
    t0=$(date +%s.%N)
    KVAULT_PHASE_TIMES=1 /usr/bin/time -v "$vault" snapshot --vault "$v" --password-file "$pw" \
      --cache-dir "$work/cache-$size" --brokers "$src" --topic-regex "$prefix\\..*" --json \
      > "$1.json" 2> "$1"
    t1=$(date +%s.%N)
    elapsed "$t0" "$t1"
  }
  snap_s=$(run_snapshot "$work/snap-$size.log")
  plan_s=$(awk -v ms="$(phase_ms "$work/snap-$size.log" "planned")" 'BEGIN { printf "%.2f", ms / 1000 }')
  snap_rss=$(peak_mib "$work/snap-$size.log")
  again_s=$(run_snapshot "$work/again-$size.log")
  again_plan_s=$(awk -v ms="$(phase_ms "$work/again-$size.log" "planned")" 'BEGIN { printf "%.2f", ms / 1000 }')
  again_rss=$(peak_mib "$work/again-$size.log")

  # The broker's own batched ListOffsets of the same partitions, through
  # Kafka's tool; a JVM start alone is measured on a call for one
  # partition and subtracted.
  t0=$(date +%s.%N)
  "$repo/scripts/kafka" tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$src" \
    --topic-partitions "$prefix\\..*" --time -1 > "$work/offsets-$size.txt"
  t1=$(date +%s.%N)
  get_s=$(elapsed "$t0" "$t1")
  t0=$(date +%s.%N)
  "$repo/scripts/kafka" tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$src" \
    --topic-partitions "$prefix.t000:0" --time -1 > /dev/null
  t1=$(date +%s.%N)
  jvm_s=$(elapsed "$t0" "$t1")
  t0=$(date +%s.%N)
  kcat -b "$src" -L > "$work/metadata-$size.txt"
  t1=$(date +%s.%N)
  kcat_s=$(elapsed "$t0" "$t1")
  got=$(wc -l < "$work/offsets-$size.txt")
  [ "$got" -ge "$size" ] || { echo "bench: kafka-get-offsets listed $got partitions of $size" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$size" "$snap_s" "$plan_s" "$again_s" "$again_plan_s" \
    "$get_s" "$jvm_s" "$kcat_s" "$snap_rss" "$again_rss" >> "$tsv"
  if [ "${KVAULT_BENCH_KEEP:-0}" != 1 ]; then
    for t in $(seq 0 $((topics - 1))); do printf '%s.t%03d\n' "$prefix" "$t"; done > "$work/topics-$size.txt"
    "$repo/scripts/kafka" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$src" --delete \
      --topic "$prefix\\..*" >/dev/null 2>&1 || true
  fi
done

echo
echo "| partitions | snapshot | of which planning | unchanged re-snapshot | its planning | broker ListOffsets (JVM start) | kcat -L | peak RSS (snapshot / unchanged) |"
echo "|---|---|---|---|---|---|---|---|"
tail -n +2 "$tsv" | while IFS=$'\t' read -r n s p a ap g j k r ar; do
  echo "| $n | $s s | $p s | $a s | $ap s | $g s ($j s) | $k s | $r / $ar MiB |"
done

gnuplot <<EOF
set terminal pngcairo size 900,600 noenhanced
set output "$work/partitions.png"
set logscale xy
set xrange [500:20000]
set yrange [0.01:100]
set key left top
set grid
set xlabel "partitions"
set ylabel "seconds (log)"
set title "vault at scale: cost against partitions (log-log; a slope of 1 is linear)"
plot "$tsv" using 1:2 skip 1 with linespoints title "snapshot (cold)", \
     "" using 1:3 skip 1 with linespoints title "planning", \
     "" using 1:4 skip 1 with linespoints title "unchanged re-snapshot", \
     "" using 1:(\$6 - \$7) skip 1 with linespoints title "broker ListOffsets, JVM start taken off", \
     "" using 1:8 skip 1 with linespoints title "kcat -L"
EOF
echo "bench: $tsv and $work/partitions.png" >&2
