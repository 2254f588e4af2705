#!/usr/bin/env bash
# Fuzzes the pure cores with cargo-fuzz (libFuzzer), starting from the committed seed corpora
# (fuzz/corpus/<target>/: real notary metadata and real references/challenges).
#
#   bash hack/fuzz.sh          60 s per target (`make fuzz`)
#   bash hack/fuzz.sh quick    3 s per target (for `make test`)
#   FUZZ_SECONDS=600 FUZZ_TARGETS="tuf_metadata" bash hack/fuzz.sh
#
# Prints the executions of each target. On a crash: the input is kept in
# fuzz/artifacts/<target>/, its path is printed, and the script exits 1 (turn it into a
# regular test, then fix). New inputs libFuzzer finds go to a scratch directory, so the
# committed corpus only changes on purpose (`cargo fuzz cmin`, or the fixtures test:
# TRUSTWATCH_UPDATE_FUZZ_SEEDS=1 cargo test --test fuzz_fixtures).
#
# Builds with debug assertions and overflow checks (the cargo-fuzz default without -O).
# Needs cargo-fuzz 0.13 (`cargo install cargo-fuzz --version ^0.13 --locked`) and a C++
# compiler for libFuzzer. Runs on the stable toolchain without sanitizers (`-s none`: Rust
# code here is `forbid(unsafe_code)`, so coverage-guided search plus Rust's own checks
# (bounds, overflow with debug assertions) is what finds bugs).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-full}"
case "$mode" in
  full) seconds="${FUZZ_SECONDS:-60}" ;;
  quick) seconds="${FUZZ_SECONDS:-3}" ;;
  *) echo "usage: $0 [full|quick]" >&2; exit 2 ;;
esac
targets="${FUZZ_TARGETS:-tuf_metadata cjson image_ref www_authenticate}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --version ^0.13 --locked" >&2
  exit 2
fi

cargo fuzz build -s none >/dev/null 2>fuzz/build.log || { cat fuzz/build.log >&2; exit 1; }
rm -f fuzz/build.log

failed=0
for t in $targets; do
  scratch="$(mktemp -d)"
  log="$(mktemp)"
  status=0
  cargo fuzz run -s none "$t" "$scratch" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 >"$log" 2>&1 || status=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  corpus="$(grep -o 'corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1)"
  if [ "$status" -ne 0 ]; then
    failed=1
    echo "fuzz $t: FAILED after ${execs:-?} executions"
    grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to' "$log" | head -20
  else
    echo "fuzz $t: ${execs:-?} executions in ${seconds}s, no crash (${corpus:-corpus ?})"
  fi
  rm -rf "$scratch" "$log"
done
exit "$failed"
