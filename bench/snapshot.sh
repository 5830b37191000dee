#!/usr/bin/env bash
# End-to-end snapshot benchmark, side by side in one run, on the local source
# cluster (scripts/kafka start):
#   1. vault snapshot of the topic into a new vault
#   2. a bare drain with kcat (kcat -C -e ... > /dev/null)
#   3. the do-it-yourself backup: kcat ... | restic backup --stdin
# Prints a markdown table of times, ratios, peak RSS and sizes for
# docs/benchmarks.md. Times on a shared 2-core machine are noise; the
# ratios between tools measured in the same run are what to read.
#
#   bench/snapshot.sh [GIB] [PARTITIONS] [--vault URL] [--small]
#     defaults: 1 GiB, 8 partitions, a new local vault in the work dir.
#     --small: the small-record set instead of 1 KiB JSON values (200-800 B
#     values, skewed keys, two headers each: bench/gen_small_records.py).
#     --vault puts vault's side on that location (s3://, az://, gs://; its
#     settings from KVAULT_STORAGE_* as for vault itself); it must not
#     hold a vault yet. bench/storage.sh compares locations side by side.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vault_url=
small=0
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --vault) vault_url=${2:?--vault needs a URL}; shift 2 ;;
    --small) small=1; shift ;;
    --vault=*) vault_url=${1#--vault=}; shift ;;
    *) positional+=("$1"); shift ;;
  esac
done
gib=${positional[0]:-1}
parts=${positional[1]:-8}
source "$repo/bench/lib.sh"
bench_setup kcat restic python3
brokers=$src
topic=bench-${gib}g-${parts}p

records=$((gib * 1024 * 1024))
if [ "$small" = 1 ]; then
  topic=bench-small-${gib}g-${parts}p
  # ~490 B a record with its headers: about 2.2 million records a GiB.
  records=$((gib * 2200000))
fi
if ! kcat -b "$brokers" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
  "$repo/bench/create-topic.sh" "$brokers" "$topic" "$parts"
  if [ "$small" = 1 ]; then
    echo "bench: filling $topic with $records small records" >&2
    python3 "$repo/bench/gen_small_records.py" "$records" | kcat -P -b "$brokers" -t "$topic" -K $'\t' -z lz4 \
      -H "content-type=application/json" -H "source=edge-7" \
      -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576
  else
    echo "bench: filling $topic with $records records of 1 KiB" >&2
    python3 "$repo/bench/gen_records.py" "$records" | kcat -P -b "$brokers" -t "$topic" -K $'\t' -z lz4 \
      -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576
  fi
fi

# The source broker's pid, to charge each tool with the broker CPU it caused.
broker_pid=$(scripts/kafka status | sed -n 's/^source: running .*(pid \([0-9]*\)).*/\1/p')
broker_cpu() { # CPU seconds the broker has used so far
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$broker_pid/stat"
}

timeit() { # label, command...: prints "seconds peak_rss_kib cpu_seconds broker_cpu_seconds"
  local label=$1; shift
  local b0; b0=$(broker_cpu)
  /usr/bin/time -f "%e %M %U %S" -o "$work/$label.time" bash -c "$*" >&2
  local b1; b1=$(broker_cpu)
  read -r e m u s < "$work/$label.time"
  awk -v e="$e" -v m="$m" -v u="$u" -v s="$s" -v b0="$b0" -v b1="$b1" 'BEGIN { printf "%s %s %.1f %.1f\n", e, m, u + s, b1 - b0 }'
}

pw=$work/pw; echo "bench passphrase" > "$pw"
rm -rf "$work/vault" "$work/restic" "$work/cache"
vault_url=${vault_url:-$work/vault}
"$vault" init --vault "$vault_url" --password-file "$pw" >&2
export KVAULT_CACHE_DIR=$work/cache RESTIC_PASSWORD_FILE=$pw
restic init -q --repo "$work/restic" >&2

read -r t_vault rss_vault cpu_vault bcpu_vault < <(timeit vault "$vault snapshot --vault '$vault_url' --password-file $pw --brokers $brokers --topics $topic --json > $work/vault.json")
read -r t_kcat rss_kcat cpu_kcat bcpu_kcat < <(timeit kcat "kcat -C -b $brokers -t $topic -o beginning -e -q > /dev/null")
read -r t_zstd rss_zstd cpu_zstd bcpu_zstd < <(timeit zstd "set -o pipefail; kcat -C -b $brokers -t $topic -o beginning -e -q -K '\t' | zstd -1 -T0 -q > $work/drain.zst")
size_zstd=$(stat -c %s "$work/drain.zst")
read -r t_restic rss_restic cpu_restic bcpu_restic < <(timeit restic "set -o pipefail; kcat -C -b $brokers -t $topic -o beginning -e -q -K '\t' | restic backup -q --repo $work/restic --stdin --stdin-filename $topic")

if [ -d "$vault_url" ]; then
  size_vault=$(du -sb "$vault_url" | cut -f1)
else # object storage: what the snapshot added
  size_vault=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_added"])' "$work/vault.json")
fi
size_restic=$(du -sb "$work/restic" | cut -f1)
python3 - "$t_vault" "$t_kcat" "$t_restic" "$rss_vault" "$rss_kcat" "$rss_restic" "$size_vault" "$size_restic" "$gib" \
  "$cpu_vault" "$cpu_kcat" "$cpu_restic" "$bcpu_vault" "$bcpu_kcat" "$bcpu_restic" \
  "$t_zstd" "$cpu_zstd" "$size_zstd" <<'PY'
import sys
tv, tk, tr, rv, rk, rr, sv, sr, gib, cv, ck, cr, bv, bk, br, tz, cz, sz = sys.argv[1:]
tv, tk, tr = float(tv), float(tk), float(tr)
mib = float(gib) * 1024
print(f"| tool | time (s) | MiB/s | speed vs kcat drain | CPU s (tool + broker) | peak RSS (MiB) | stored (MiB) |")
print(f"|---|---|---|---|---|---|---|")
print(f"| vault snapshot | {tv:.1f} | {mib/tv:.0f} | {tk/tv:.2f}x | {cv} + {bv} | {int(rv)/1024:.0f} | {int(sv)/2**20:.0f} |")
print(f"| kcat drain (> /dev/null) | {tk:.1f} | {mib/tk:.0f} | 1.00x | {ck} + {bk} | {int(rk)/1024:.0f} | - |")
print(f"| kcat \\| zstd -1 -T0 | {float(tz):.1f} | {mib/float(tz):.0f} | {tk/float(tz):.2f}x | {cz} | - | {int(sz)/2**20:.0f} |")
print(f"| kcat \\| restic backup --stdin | {tr:.1f} | {mib/tr:.0f} | {tk/tr:.2f}x | {cr} + {br} | {int(rr)/1024:.0f} (restic) | {int(sr)/2**20:.0f} |")
print()
print(f"vault/kcat speed ratio: {tk/tv:.2f}; vault vs kcat|restic: {tr/tv:.2f}x faster; vault size / restic size: {int(sv)/int(sr):.2f}")
PY
echo "work dir: $work" >&2
