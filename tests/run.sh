#!/usr/bin/env bash
# Install what pgbust needs, configure, build, and run every test (unit, integration, examples).
# Usage: ./tests/run.sh [ctest args...]   e.g. ./tests/run.sh -L unit, ./tests/run.sh -L bench
#        ./tests/run.sh --sanitize           ASan+UBSan unit tests and fuzzing, with clang
set -euo pipefail
cd "$(dirname "$0")/.."

./tests/deps.sh

# --sanitize: ASan+UBSan unit tests and a short fuzz pass with clang (tests/sanitize.sh).
if [ "${1:-}" = "--sanitize" ]; then exec ./tests/sanitize.sh; fi

build=${PGBUST_BUILD_DIR:-build}
jobs=$(nproc)
# Benchmarks are built (and known to CTest) only when asked for: any argument naming them,
# e.g. -L bench or -R bench_pipeline. Otherwise they are switched off, so that a bare `ctest`
# in this build directory never runs them.
benchmarks=OFF
case " $* " in *" -LE bench "*) ;; *bench*) benchmarks=ON ;; esac
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGBUST_BENCHMARKS=$benchmarks >/dev/null
cmake --build "$build" -j "$jobs"

# Integration tests start their own PostgreSQL (as user postgres when run as root) in temp
# dirs; make sure that user can reach the build tree and the binary.
if [ "$(id -u)" -eq 0 ]; then chmod -R a+rX "$build" >/dev/null 2>&1 || true; fi

cd "$build"
if [ $# -eq 0 ]; then set -- -LE bench; fi
ctest --output-on-failure -j "$jobs" "$@"
