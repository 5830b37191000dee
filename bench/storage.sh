#!/usr/bin/env bash
# Snapshot and restore throughput by vault location, side by side in one
# run: the same topic snapshotted into, and restored from, a vault on
#   1. a local directory,
#   2. moto's S3 server on loopback (scripts/storage),
#   3. Azurite (Azure Blob) on loopback,
# or into the vaults named with --vault (repeatable; the first is the
# baseline of the ratios). Prints a markdown table for docs/benchmarks.md:
# time, MiB/s, ratio to the first location, and CPU seconds of vault and of
# the storage server (which shares these cores with vault). Absolute times
# on a shared 2-core machine are noise; read the ratios.
#
#   bench/storage.sh [GIB] [PARTITIONS] [--vault URL ...]   defaults: 1 GiB, 8 partitions
#
# Storage settings for a remote --vault come from KVAULT_STORAGE_* and
# the cloud's own environment, as for vault itself.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
gib=1
parts=8
urls=()
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --vault) urls+=("${2:?--vault needs a URL}"); shift 2 ;;
    --vault=*) urls+=("${1#--vault=}"); shift ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -lt 1 ] || gib=${positional[0]}
[ ${#positional[@]} -lt 2 ] || parts=${positional[1]}
source "$repo/bench/lib.sh"
bench_setup kcat python3
run=$(date +%s)-$$

# Which server process serves a URL, to charge vault with its CPU.
declare -A server_pid=()
if [ ${#urls[@]} -eq 0 ]; then
  eval "$(scripts/storage start)"
  urls=("$work/vault-local" "s3://vault-bench/$run" "az://vault-bench/$run")
  server_pid[s3]=$KVAULT_TEST_S3_PID
  server_pid[az]=$KVAULT_TEST_AZURE_PID
  # The local servers' settings (the Azurite key is its public development key).
  s3_env=(KVAULT_STORAGE_ENDPOINT="$KVAULT_TEST_S3_ENDPOINT" KVAULT_STORAGE_ALLOW_HTTP=true
          KVAULT_STORAGE_REGION=us-east-1 KVAULT_STORAGE_AWS_ACCESS_KEY_ID=bench
          KVAULT_STORAGE_AWS_SECRET_ACCESS_KEY=bench-secret)
  az_env=(KVAULT_STORAGE_AZURE_STORAGE_ENDPOINT="$KVAULT_TEST_AZURE_ENDPOINT/devstoreaccount1"
          KVAULT_STORAGE_ALLOW_HTTP=true KVAULT_STORAGE_AZURE_STORAGE_ACCOUNT_NAME=devstoreaccount1
          KVAULT_STORAGE_AZURE_STORAGE_ACCOUNT_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==')
else
  s3_env=()
  az_env=()
fi

topic=bench-${gib}g-${parts}p
records=$((gib * 1024 * 1024))
if ! kcat -b "$src" -L -t "$topic" 2>/dev/null | grep -q "partition $((parts - 1)),"; then
  echo "bench: filling $topic with $records records of 1 KiB" >&2
  "$repo/bench/create-topic.sh" "$src" "$topic" "$parts"
  python3 "$repo/bench/gen_records.py" "$records" | kcat -P -b "$src" -t "$topic" -K $'\t' -z lz4 \
    -X linger.ms=50 -X batch.size=1000000 -X queue.buffering.max.kbytes=1048576
fi

cpu_of() { # PID: CPU seconds it has used so far (0 without one)
  if [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ]; then
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
  else
    echo 0
  fi
}

pw=$work/pw; echo "bench passphrase" > "$pw"
rows=$work/rows.tsv
: > "$rows"
for url in "${urls[@]}"; do
  scheme=${url%%://*}
  [ "$scheme" != "$url" ] || scheme=local
  case $scheme in
    s3) envs=("${s3_env[@]}") ;;
    az|azure) envs=("${az_env[@]}") ;;
    *) envs=() ;;
  esac
  spid=${server_pid[$scheme]:-}
  export KVAULT_CACHE_DIR=$work/cache-$scheme
  rm -rf "$KVAULT_CACHE_DIR"
  [ "$scheme" != local ] || rm -rf "$url"
  env "${envs[@]}" "$vault" init --vault "$url" --password-file "$pw" >&2
  for op in snapshot restore; do
    if [ $op = snapshot ]; then
      cmd=("$vault" snapshot --vault "$url" --password-file "$pw" --brokers "$src" --topics "$topic" --json)
    else
      # A fresh cache, as on the host that restores after a disaster.
      rm -rf "$KVAULT_CACHE_DIR"
      cmd=("$vault" restore --vault "$url" --password-file "$pw" --snapshot-id latest --brokers "$dst"
           --rename "$topic=$topic-from-$scheme-$run" --consumer-groups none --json)
    fi
    s0=$(cpu_of "$spid")
    env "${envs[@]}" /usr/bin/time -f "%e %U %S" -o "$work/time" "${cmd[@]}" > "$work/$scheme-$op.json"
    s1=$(cpu_of "$spid")
    read -r e u s < "$work/time"
    printf '%s\t%s\t%s\t%s\t%s\n' "$url" "$op" "$e" "$(awk -v u="$u" -v s="$s" 'BEGIN{printf "%.1f", u+s}')" \
      "$(awk -v a="$s0" -v b="$s1" 'BEGIN{printf "%.1f", b-a}')" >> "$rows"
  done
done

python3 - "$rows" "$gib" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
mib = float(sys.argv[2]) * 1024
base = {}
print("| vault location | operation | time (s) | MiB/s | speed vs first location | CPU s (vault + storage server) |")
print("|---|---|---|---|---|---|")
for url, op, t, cpu, server in rows:
    t = float(t)
    base.setdefault(op, t)
    print(f"| {url} | {op} | {t:.1f} | {mib/t:.0f} | {base[op]/t:.2f}x | {cpu} + {server} |")
PY
echo "work dir: $work" >&2
