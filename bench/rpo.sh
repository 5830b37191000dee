#!/usr/bin/env bash
# Recovery point of continuous mode: a steady producer writes records with
# their send time as timestamp while `vault snapshot --every INTERVAL` runs.
# Each record's RPO is the time from its append to the commit of the first
# snapshot that holds it (a snapshot holds what was appended before its
# cut). Reports p50, p99 and max over all records, with the interval.
#
#   bench/rpo.sh [SECONDS] [INTERVAL] [RATE]   defaults: 90 s, 10s, 2000 records/s of ~1 KiB
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-90}
interval=${2:-10s}
rate=${3:-2000}
source "$repo/bench/lib.sh"
bench_setup
brokers=$src
topic=bench-rpo-$$
"$repo/bench/create-topic.sh" "$brokers" "$topic" 8
pw=$work/pw; echo "bench passphrase" > "$pw"
v=$work/vault-rpo; rm -rf "$v"
"$vault" init --vault "$v" --password-file "$pw" >&2
export KVAULT_CACHE_DIR=$work/cache-rpo

# The steady producer: RATE records a second, each stamped with its send time.
python3 - "$seconds" "$rate" <<'PY' | kcat -P -b "$brokers" -t "$topic" -K $'\t' -X linger.ms=5 &
import sys, time
seconds, rate = int(sys.argv[1]), int(sys.argv[2])
pad = "x" * 1000
start = time.time(); n = 0
while time.time() - start < seconds:
    n += 1
    print(f"k{n % 997}\t{{\"n\": {n}, \"t\": {time.time():.3f}, \"pad\": \"{pad}\"}}", flush=(n % 100 == 0))
    target = start + n / rate
    delay = target - time.time()
    if delay > 0:
        time.sleep(delay)
PY
producer=$!
"$vault" snapshot --vault "$v" --password-file "$pw" --brokers "$brokers" --topics "$topic" \
  --every "$interval" --json > "$work/rpo.jsonl" 2> "$work/rpo.err" &
snapper=$!
wait "$producer"
# Two more intervals so the last records are committed too.
sleep "$(( $(echo "$interval" | tr -dc 0-9) * 2 + 5 ))"
kill -TERM "$snapper"; wait "$snapper" || true

"$vault" cat latest --vault "$v" --password-file "$pw" --topic "$topic" --format '%T\n' > "$work/ts.txt"
python3 - "$work/rpo.jsonl" "$work/ts.txt" "$interval" <<'PY'
import json, sys, bisect
snaps = [json.loads(l) for l in open(sys.argv[1])]
cuts = [s["time_ms"] for s in snaps]
commits = [s["committed_ms"] for s in snaps]
rpos = []
for line in open(sys.argv[2]):
    ts = int(line)
    i = bisect.bisect_left(cuts, ts)       # the first cut at or after the append
    if i < len(cuts):
        rpos.append((commits[i] - ts) / 1000)
rpos.sort()
pct = lambda p: rpos[min(len(rpos) - 1, int(p / 100 * len(rpos)))]
print(f"| interval | snapshots | records | RPO p50 s | RPO p99 s | RPO max s | snapshot duration p50 s |")
print(f"| --- | --- | --- | --- | --- | --- | --- |")
durs = sorted((s["committed_ms"] - s["time_ms"]) / 1000 for s in snaps)
print(f"| {sys.argv[3]} | {len(snaps)} | {len(rpos)} | {pct(50):.1f} | {pct(99):.1f} | {rpos[-1]:.1f} | {durs[len(durs)//2]:.2f} |")
PY
