#!/usr/bin/env bash
# Runs every libFuzzer target of build/fuzz for SECONDS each (default 60), one after another,
# over its seed corpus plus what earlier runs found (build/fuzz/fuzz/corpus/NAME). A crash stops
# the run and leaves the input as build/fuzz/fuzz/crash-* (libFuzzer's artifact prefix).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
dir=build/fuzz/fuzz
export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)}
for bin in "$dir"/fuzz_*; do
  name=${bin##*/fuzz_}
  mkdir -p "$dir/corpus/$name"
  echo "fuzz: $name for ${seconds}s"
  "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$dir/" "$dir/corpus/$name" "fuzz/corpus/$name" 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|#[0-9]+ *DONE)' || true
  test "${PIPESTATUS[0]}" -eq 0
done
