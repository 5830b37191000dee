#!/usr/bin/env bash
# Runs fuzz targets for SECONDS each (default 600), one after another,
# starting from the golden vectors as seeds: every target, or the ones named
# after SECONDS (fuzz/run.sh 900 pack manifest). Needs nightly and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# Crashes land in fuzz/artifacts/<target>/; copy a minimised one into
# fuzz/regressions/<target>/ so the test suite replays it forever.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-600}
shift || true
KVAULT_WRITE_FUZZ_CORPUS=1 cargo test -q -p vault-format --test fuzz_replay >/dev/null
cd fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls fuzz_targets | sed 's/\.rs$//'))
for t in "${targets[@]}"; do
  echo "== $t: ${secs}s"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 2>&1 \
    | grep -E "^#[0-9]+ +DONE|ERROR|SUMMARY|panicked|Done [0-9]+ runs" || true
done
