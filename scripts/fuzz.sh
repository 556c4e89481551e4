#!/usr/bin/env bash
# Builds pghaul's libFuzzer targets (tests/fuzz, CMake option PGHAUL_FUZZ, Clang with ASan and
# UBSan) and runs them. tests/fuzz/README.md says what each target covers.
#
#   scripts/fuzz.sh              fuzz every target for PGHAUL_FUZZ_SECONDS (default 30) each,
#                                two at a time, starting from a copy of the committed corpus
#   scripts/fuzz.sh --regress    run every file of the committed corpus once through its target
#                                (no fuzzing; seconds): the crash regressions
#   scripts/fuzz.sh [--regress] TARGET...   only these targets (e.g. plan_fuzz)
#
# Environment: PGHAUL_FUZZ_BUILD_DIR (default <repo>/build-fuzz), PGHAUL_FUZZ_SECONDS,
# PGHAUL_FUZZ_PARALLEL (targets at once, default 2).
#
# Everything a run writes (the working corpus, which grows, logs, and crash artifacts) goes under
# <build dir>/fuzz-run/<target>/; the committed corpus is only read. Exits 1 naming the target
# and the input that crashed, leaked, hung or broke an assertion when any target fails.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PGHAUL_FUZZ_BUILD_DIR:-$repo/build-fuzz}"
seconds="${PGHAUL_FUZZ_SECONDS:-30}"
parallel="${PGHAUL_FUZZ_PARALLEL:-2}"
corpus_root="$repo/tests/fuzz/corpus"

mode=fuzz
selected=()
for arg in "$@"; do
  case "$arg" in
    --regress) mode=regress ;;
    -h | --help)
      sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "fuzz.sh: unknown option $arg (see --help)" >&2
      exit 64
      ;;
    *) selected+=("$arg") ;;
  esac
done

for tool in clang clang++ cmake ninja; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "fuzz.sh: $tool is missing: run scripts/install-deps.sh (it installs clang and" \
      "libclang-rt-14-dev)" >&2
    exit 1
  fi
done

echo "== fuzz build ($build)"
start=$SECONDS
# -O1 -g: fast enough to fuzz, readable stacks. The compiler of an existing build directory
# cannot change, hence CC/CXX on every configure (CMake ignores them once cached).
CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -G Ninja -DPGHAUL_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)"
echo "fuzz.sh: built in $((SECONDS - start)) s"

mapfile -t targets <"$build/tests/fuzz/targets.txt"
if ((${#selected[@]} > 0)); then
  for t in "${selected[@]}"; do
    if [[ ! " ${targets[*]} " =~ \ $t\  ]]; then
      echo "fuzz.sh: no target $t (targets: ${targets[*]})" >&2
      exit 64
    fi
  done
  targets=("${selected[@]}")
fi

# The longest input a target tries: every real input (a plan, a configuration, an info output,
# a task, a conversation) is well under it, and longer ones only slow the fuzzer down.
max_len=4096

run_root="$build/fuzz-run"
mkdir -p "$run_root"
# Scratch directories of the targets (fuzz_support.h): on tmpfs when there is one, as the agent
# syncs every task file it writes (agent_messages_fuzz runs about 5 times faster there), else
# under the run directory; never /tmp.
if [[ -d /dev/shm && -w /dev/shm ]]; then
  scratch="$(mktemp -d /dev/shm/pghaul-fuzz.XXXXXX)"
else
  scratch="$run_root/tmp"
  mkdir -p "$scratch"
fi
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"
# An UBSan report is fatal (compiled so) and shows where it came from.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:symbolize=1"

# Runs one target (in a background subshell, which becomes the fuzzer: its pid is the
# fuzzer's); its output goes to <run>/<target>/fuzz.log.
run_target() {
  local target="$1"
  local dir="$run_root/$target"
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/artifacts"
  if [[ -d "$corpus_root/$target" ]]; then
    cp -R "$corpus_root/$target/." "$dir/corpus/"
  fi
  local common=(-max_len="$max_len" -rss_limit_mb=2048 -timeout=10
    -artifact_prefix="$dir/artifacts/" -print_final_stats=1)
  if [[ "$mode" == regress ]]; then
    exec "$build/tests/fuzz/$target" "${common[@]}" -runs=0 "$dir/corpus" >"$dir/fuzz.log" 2>&1
  else
    exec "$build/tests/fuzz/$target" "${common[@]}" -max_total_time="$seconds" "$dir/corpus" \
      >"$dir/fuzz.log" 2>&1
  fi
}

# Prints one line per finished target, and what failed.
report() {
  local target="$1" status="$2"
  local dir="$run_root/$target"
  local execs rate
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz.log" | tail -1)"
  if ((status == 0)); then
    printf 'fuzz.sh: %-26s ok      %10s runs %8s exec/s  corpus %s files\n' "$target" \
      "${execs:-?}" "${rate:-?}" "$(find "$dir/corpus" -type f | wc -l)"
    return
  fi
  printf 'fuzz.sh: %-26s FAILED  (exit %s)\n' "$target" "$status" >&2
  local found=0
  for artifact in "$dir"/artifacts/*; do
    [[ -e "$artifact" ]] || continue
    found=1
    echo "fuzz.sh:   input: $artifact" >&2
  done
  if ((found == 0)); then
    # -runs=0 over a corpus names the file it was running when it crashed.
    grep -h -m1 -o 'Running: .*\|Test unit written to .*' "$dir/fuzz.log" >&2 || true
  fi
  echo "fuzz.sh:   log: $dir/fuzz.log (last lines below)" >&2
  tail -n 40 "$dir/fuzz.log" | sed 's/^/    /' >&2
  echo "fuzz.sh:   reproduce: $build/tests/fuzz/$target <input>" >&2
}

echo "== fuzz $mode: ${targets[*]} ($([[ $mode == fuzz ]] && echo "$seconds s each, ")$parallel at a time)"
start=$SECONDS
failed=()
declare -A running=()  # pid -> target
# Interrupted: stop the fuzzers this script started (by pid).
trap 'for pid in "${!running[@]}"; do kill "$pid" 2>/dev/null || true; done' INT TERM
for target in "${targets[@]}"; do
  while ((${#running[@]} >= parallel)); do
    status=0
    wait -n -p done_pid "${!running[@]}" || status=$?
    report "${running[$done_pid]}" "$status"
    ((status == 0)) || failed+=("${running[$done_pid]}")
    unset "running[$done_pid]"
  done
  run_target "$target" &
  running[$!]="$target"
done
while ((${#running[@]} > 0)); do
  status=0
  wait -n -p done_pid "${!running[@]}" || status=$?
  report "${running[$done_pid]}" "$status"
  ((status == 0)) || failed+=("${running[$done_pid]}")
  unset "running[$done_pid]"
done
echo "fuzz.sh: ran in $((SECONDS - start)) s"

if ((${#failed[@]} > 0)); then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs and logs above; tests/fuzz/README.md says how to" \
    "turn an input into a regression)" >&2
  exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets passed"
