#!/usr/bin/env bash
# The fault suite's soak (tests/faults/README.md): N seeds in a row, each a whole migration with
# one injected fault, as root. One line per run goes to the results file (seed, fault, phase,
# where it landed, outcome, invariants ok or the names of those that failed, duration); each
# run's full output to <results>.logs/seed-<N>.log; a summary of the counts at the end.
#
#   sudo scripts/soak.sh [-n RUNS] [-s FIRST_SEED] [-o RESULTS] [-b BUILD_DIR]
#
# Defaults: 50 runs from seed 1, results in ./soak-results.txt (appended), build dir
# $PGHAUL_BUILD_DIR or <repo>/build (built first: pghaul_faults and the daemons). Exit status 1
# when any run broke an invariant or could not be run. Replay one run: pghaul_faults --seed N.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PGHAUL_BUILD_DIR:-$repo/build}"
runs=50
first=1
results="$PWD/soak-results.txt"

while getopts "n:s:o:b:h" opt; do
  case "$opt" in
    n) runs="$OPTARG" ;;
    s) first="$OPTARG" ;;
    o) results="$OPTARG" ;;
    b) build="$OPTARG" ;;
    *) sed -n '2,12p' "$0" >&2; exit 64 ;;
  esac
done
if ! [[ "$runs" =~ ^[0-9]+$ && "$first" =~ ^[0-9]+$ && "$runs" -gt 0 ]]; then
  echo "soak.sh: -n and -s take non-negative numbers (-n at least 1)" >&2
  exit 64
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "soak.sh: run as root: the suite creates network namespaces and runs PostgreSQL as" \
    "the postgres OS user (e.g. sudo $0)" >&2
  exit 77
fi

cmake --build "$build" -j2 --target pghaul_faults
faults="$build/tests/faults/pghaul_faults"
logs="$results.logs"
mkdir -p "$logs"
: >"$results.tmp"

echo "soak: $runs runs from seed $first; results in $results, logs in $logs"
for ((seed = first; seed < first + runs; seed++)); do
  start=$(date +%s)
  # Each seed in a process of its own: a run that crashes the harness ends only that run.
  if "$faults" --seed "$seed" --results "$results.tmp" >"$logs/seed-$seed.log" 2>&1; then
    :
  fi
  if ! grep -q "^seed=$seed " "$results.tmp"; then
    echo "seed=$seed fault=? phase=? outcome=harness-crash invariants=harness-crash" \
      "duration_s=$(($(date +%s) - start))" >>"$results.tmp"
  fi
  tail -n 1 "$results.tmp"
done
cat "$results.tmp" >>"$results"

# The summary: counts of this soak's runs only.
echo "== summary ($runs runs)"
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p; s/^$1=\([^ ]*\).*/\1/p" "$results.tmp"; }
echo "-- by outcome";    field outcome | sort | uniq -c | sort -rn
echo "-- by fault";      field fault | sort | uniq -c | sort -rn
echo "-- by phase";      field phase | sort | uniq -c | sort -rn
echo "-- invariants";    field invariants | sed 's/^ok$/ok/; t; s/.*/failed/' | sort | uniq -c
bad="$(grep -v ' invariants=ok ' "$results.tmp" | sed 's/ .*//' | tr '\n' ' ' || true)"
rm -f "$results.tmp"
if [[ -n "$bad" ]]; then
  echo "runs that broke an invariant: $bad(logs: $logs/seed-<N>.log)"
  exit 1
fi
echo "every run kept every invariant"
