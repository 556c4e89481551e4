#!/usr/bin/env bash
# The one command that runs pghaul's whole test suite on a fresh Debian 12 machine, as root:
# installs the Debian packages (scripts/install-deps.sh), builds into build/ (Ninja,
# RelWithDebInfo), then runs the unit tests, the integration tests (real PostgreSQL 15, real
# daemons, network namespaces), the libFuzzer targets for a bounded time (scripts/fuzz.sh) and the
# fault-injection seeds (tests/faults). Exits non-zero when anything fails. Works from any cwd.
#
# PGHAUL_BUILD_DIR=/path overrides the build directory (default: <repo>/build).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PGHAUL_BUILD_DIR:-$repo/build}"
jobs="$(nproc 2>/dev/null || echo 2)"

if [[ $(id -u) -ne 0 ]]; then
  echo "test.sh: run as root: the integration tests create network namespaces and run" \
    "PostgreSQL as the postgres OS user (e.g. sudo $0)" >&2
  exit 1
fi

echo "== dependencies"
bash "$repo/scripts/install-deps.sh"

echo "== build ($build)"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j "$jobs"

failed=()

# Everything that is not an integration test, in parallel.
echo "== unit tests"
if ! ctest --test-dir "$build" --output-on-failure --no-tests=error --label-exclude 'integration|faults' -j "$jobs"; then
  failed+=(unit)
fi

# Integration tests are RUN_SERIAL: they measure timings and each starts PostgreSQL clusters.
echo "== integration tests"
if ! ctest --test-dir "$build" --output-on-failure --no-tests=error --label-regex integration; then
  failed+=(integration)
fi

# libFuzzer targets (tests/fuzz/README.md): a clang build of their own in build-fuzz/, then each
# target for PGHAUL_FUZZ_SECONDS (default 30) from a copy of the committed corpus.
echo "== fuzz"
if ! bash "$repo/scripts/fuzz.sh"; then
  failed+=(fuzz)
fi

# The fault-injection suite's CI seeds (tests/faults/README.md): whole migrations with one fault
# each, serial; the long soak is scripts/soak.sh.
echo "== fault-injection seeds"
if ! ctest --test-dir "$build" --output-on-failure --no-tests=error --label-regex faults; then
  failed+=(faults)
fi

if ((${#failed[@]} > 0)); then
  echo "test.sh: FAILED: ${failed[*]} tests (see the output above)" >&2
  exit 1
fi
echo "test.sh: all tests passed"
