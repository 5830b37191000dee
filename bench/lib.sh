# Sourced by the bench scripts, after they set `repo`: what each of them
# did first, in one place.
#
#   bench_setup [TOOL...]
#     checks that each TOOL is installed, builds the release vault (or takes
#     KVAULT_BENCH_BIN=PATH, another build to compare before and after),
#     starts the local brokers (scripts/kafka start) and makes the work
#     directory (KVAULT_BENCH_DIR=DIR keeps the work files there).
#     Sets vault, src and dst (the source and target brokers) and work.
bench_setup() {
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/vault-target}
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "bench: $t missing (apt-get install $t)" >&2; exit 1; }
  done
  cd "$repo"
  if [ -n "${KVAULT_BENCH_BIN:-}" ]; then
    vault=$KVAULT_BENCH_BIN
  else
    cargo build --release --bin vault >&2
    vault=$CARGO_TARGET_DIR/release/vault
  fi
  eval "$(scripts/kafka start)"
  src=$KVAULT_TEST_SOURCE_BROKERS
  dst=$KVAULT_TEST_TARGET_BROKERS
  work=${KVAULT_BENCH_DIR:-$(mktemp -d /tmp/kvault-bench.XXXXXX)}
  mkdir -p "$work"
}
