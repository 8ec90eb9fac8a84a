#!/usr/bin/env bash
# The unit tests and a short libFuzzer pass over every target in tests/fuzz, all under
# AddressSanitizer + UndefinedBehaviorSanitizer, built with clang in its own build directory.
# Run through ./tests/run.sh --sanitize. PGBUST_FUZZ_SECONDS (default 20) per target.
# A crash leaves its input as <build>/fuzz-artifacts/<target>-crash-*: add it to
# tests/fuzz/corpus/<target>/ once fixed, so every later run replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${PGBUST_SANITIZE_BUILD_DIR:-build-sanitize}
seconds=${PGBUST_FUZZ_SECONDS:-20}
cxx=${PGBUST_SANITIZE_CXX:-clang++-14}
jobs=$(nproc)
command -v "$cxx" >/dev/null || { echo "sanitize: $cxx not found (./tests/deps.sh installs it)" >&2; exit 1; }

start=$(date +%s)
CXX=$cxx cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGBUST_SANITIZE=ON >/dev/null
cmake --build "$build" -j "$jobs" --target pgbust_unit_tests fuzz_targets
echo "sanitize: built in $(($(date +%s) - start)) s" >&2

export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$build/tests/pgbust_unit_tests"

artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
for target in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # A copy: libFuzzer adds what it finds to the corpus directory, the tree's stays as it is.
  if [ -d "tests/fuzz/corpus/$name" ]; then cp -r "tests/fuzz/corpus/$name/." "$work/"; fi
  echo "sanitize: fuzzing $name for ${seconds}s" >&2
  "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -artifact_prefix="$artifacts/$name-" -print_final_stats=1 "$work" 2>"$artifacts/$name.log" ||
    { tail -n 60 "$artifacts/$name.log" >&2; echo "sanitize: $name failed" >&2; exit 1; }
  grep -E "^stat::number_of_executed_units" "$artifacts/$name.log" >&2 || true
  rm -rf "$work"
  trap - EXIT
done
echo "sanitize: OK in $(($(date +%s) - start)) s" >&2
