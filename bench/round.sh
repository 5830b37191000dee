#!/usr/bin/env bash
# The performance round's table (docs/benchmarks.md § Small records), side
# by side in one run on the local brokers (scripts/kafka start):
#   snapshot side, from the source cluster:
#     kcat drain, kcat | zstd -1, vault snapshot, kcat | restic backup --stdin,
#     and vault snapshot again with nothing new (the fixed cost);
#   restore side, into the target cluster:
#     vault restore of that snapshot, kcat -P of the drained text (with the
#     same headers on every record), each into a new topic;
#   then vault gc --keep-last 1 after a second, unchanged snapshot.
# Every row has its wall time, the CPU seconds of the tool (user + system,
# all processes of a pipe together), the broker's CPU seconds while it ran,
# the peak RSS and what was stored.
#
#   bench/round.sh [--small] [GIB] [PARTITIONS]      defaults: 1 GiB, 8
#     --small: 200-800 B records with two headers and skewed keys
#              (bench/gen_small_records.py); without it 1 KiB JSON values
#              (bench/gen_records.py).
#   KVAULT_BENCH_DIR=DIR keeps the work files (records, vault) there.
#   KVAULT_BENCH_BIN=PATH runs that vault binary instead of building one.
#   KVAULT_BENCH_INIT_ARGS="..." are added to `vault init` (e.g.
#              "--avg-chunk-kib 64" to measure another chunk size).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
small=0
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --small) small=1; shift ;;
    *) positional+=("$1"); shift ;;
  esac
done
gib=${positional[0]:-1}
parts=${positional[1]:-8}
source "$repo/bench/lib.sh"
bench_setup kcat restic zstd python3

headers=()
if [ "$small" = 1 ]; then
  topic=bench-small-${gib}g-${parts}p
  records=$((gib * 2200000))
  headers=(-H "content-type=application/json" -H "source=edge-7")
  gen=(python3 "$repo/bench/gen_small_records.py" "$records")
else
  topic=bench-${gib}g-${parts}p
  records=$((gib * 1024 * 1024))
  gen=(python3 "$repo/bench/gen_records.py" "$records")
fi
if ! kcat -b "$src" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
  "$repo/bench/create-topic.sh" "$src" "$topic" "$parts"
  echo "bench: filling $topic with $records records" >&2
  "${gen[@]}" | kcat -P -b "$src" -t "$topic" -K $'\t' -z lz4 "${headers[@]}" \
    -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576
fi

pid_of() { scripts/kafka status | sed -n "s/^$1: running .*(pid \([0-9]*\)).*/\1/p"; }
src_pid=$(pid_of source)
dst_pid=$(pid_of target)
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

# label, broker pid, command: appends "label seconds rss_kib cpu broker_cpu" to rows
rows=$work/rows
: > "$rows"
timeit() {
  local label=$1 broker=$2; shift 2
  local b0 b1; b0=$(cpu_of "$broker")
  /usr/bin/time -f "%e %M %U %S" -o "$work/$label.time" bash -c "$*" >&2
  b1=$(cpu_of "$broker")
  read -r e m u s < "$work/$label.time"
  awk -v l="$label" -v e="$e" -v m="$m" -v u="$u" -v s="$s" -v b0="$b0" -v b1="$b1" \
    'BEGIN { printf "%s %s %s %.1f %.1f\n", l, e, m, u + s, b1 - b0 }' >> "$rows"
}

pw=$work/pw; echo "bench passphrase" > "$pw"
rm -rf "$work/vault" "$work/restic" "$work/cache"
export KVAULT_CACHE_DIR=$work/cache RESTIC_PASSWORD_FILE=$pw
"$vault" init --vault "$work/vault" --password-file "$pw" ${KVAULT_BENCH_INIT_ARGS:-} >&2
restic init -q --repo "$work/restic" >&2
v=(--vault "$work/vault" --password-file "$pw")

timeit drain "$src_pid" "kcat -C -b $src -t $topic -o beginning -e -q > /dev/null"
timeit zstd "$src_pid" "set -o pipefail; kcat -C -b $src -t $topic -o beginning -e -q -K '\t' | zstd -1 -T0 -q > $work/drain.zst"
timeit snapshot "$src_pid" "$vault snapshot ${v[*]} --brokers $src --topics $topic --json > $work/snapshot.json"
timeit restic "$src_pid" "set -o pipefail; kcat -C -b $src -t $topic -o beginning -e -q -K '\t' | restic backup -q --repo $work/restic --stdin --stdin-filename $topic"
timeit unchanged "$src_pid" "$vault snapshot ${v[*]} --brokers $src --topics $topic --json > $work/unchanged.json"
size_vault=$(du -sb "$work/vault" | cut -f1)
size_restic=$(du -sb "$work/restic" | cut -f1)
size_zstd=$(stat -c %s "$work/drain.zst")

zstd -dc "$work/drain.zst" > "$work/records.tsv"
run=$(date +%s)
to_vault=$topic-restored-$run
to_kcat=$topic-kcat-$run
"$repo/bench/create-topic.sh" "$dst" "$to_kcat" "$parts"
timeit restore "$dst_pid" "$vault restore ${v[*]} --snapshot-id latest --brokers $dst --rename $topic=$to_vault --topic-config retention.ms=-1 --json > $work/restore.json"
timeit produce "$dst_pid" "kcat -P -b $dst -t $to_kcat -K '\t' -z lz4 ${headers[*]} -X linger.ms=20 -X batch.size=1000000 -X queue.buffering.max.kbytes=65536 < $work/records.tsv"
rm -f "$work/records.tsv"
timeit gc "$src_pid" "$vault gc ${v[*]} --keep-last 1 --json > $work/gc.json"

count() { kcat -C -b "$dst" -t "$1" -e -q -X isolation.level=read_committed -f '\n' | wc -l; }
n_vault=$(count "$to_vault"); n_kcat=$(count "$to_kcat")
python3 - "$rows" "$gib" "$size_vault" "$size_restic" "$size_zstd" "$n_vault" "$n_kcat" "$records" <<'PY'
import sys
rows_file, gib, sv, sr, sz, nv, nk, n = sys.argv[1:]
rows = {l.split()[0]: l.split()[1:] for l in open(rows_file)}
mib = float(gib) * 1024
stored = {"snapshot": int(sv), "restic": int(sr), "zstd": int(sz)}
names = [
    ("drain", "`kcat -C -e` drain"),
    ("zstd", "`kcat -C -e \\| zstd -1 -T0`"),
    ("snapshot", "`vault snapshot`"),
    ("restic", "`kcat \\| restic backup --stdin`"),
    ("restore", "`vault restore`"),
    ("produce", "`kcat -P`"),
    ("unchanged", "`vault snapshot`, nothing new"),
    ("gc", "`vault gc --keep-last 1`"),
]
print("| | time (s) | CPU s (tool) | CPU s (broker) | peak RSS (MiB) | stored (MiB) |")
print("|---|---|---|---|---|---|")
for key, label in names:
    e, m, c, b = rows[key]
    s = f"{stored[key] / 2**20:.0f}" if key in stored else "-"
    print(f"| {label} | {float(e):.2f} | {c} | {b} | {int(m) / 1024:.0f} | {s} |")
t = {k: float(v[0]) for k, v in rows.items()}
c = {k: float(v[2]) for k, v in rows.items()}
print()
print(f"- snapshot CPU / (drain + zstd -1 CPU): {c['snapshot'] / c['zstd']:.2f} (goal <= 1.3)")
print(f"- snapshot wall vs drain: {t['drain'] / t['snapshot']:.2f}x (goal >= 0.5)")
print(f"- restore speed vs kcat -P: {t['produce'] / t['restore']:.2f}x (goal >= 0.9)")
print(f"- vault size / restic size: {stored['snapshot'] / stored['restic']:.3f} (goal <= 1)")
print(f"- unchanged snapshot: {t['unchanged']:.2f} s (goal <= 0.4)")
print(f"- records: {n} produced, {nv} restored by vault, {nk} by kcat -P")
PY
# The restored copies are only for counting; a few runs would fill the disk.
scripts/kafka tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$dst" --delete \
  --topic "$to_vault|$to_kcat" >/dev/null 2>&1 || true
echo "work dir: $work" >&2
