#!/usr/bin/env bash
# The README's first command: installs pghaul's Debian packages, builds it into build/, and runs
# `build/cli/pghaul demo` (docs/demo.md): a whole migration between two throwaway PostgreSQL 15
# clusters on this machine. Needs root on Debian 12. Arguments go to `pghaul demo` (--keep,
# --scale N, --dir DIR).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PGHAUL_BUILD_DIR:-$repo/build}"

if [[ $(id -u) -ne 0 ]]; then
  echo "quickstart.sh: run as root (sudo $0): it installs Debian packages and runs PostgreSQL" \
    "as the postgres OS user" >&2
  exit 1
fi

echo "== dependencies"
bash "$repo/scripts/install-deps.sh"
echo "== build ($build)"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target pghaul-agent pghaul-controller pghaul
echo "== demo"
exec "$build/cli/pghaul" demo "$@"
