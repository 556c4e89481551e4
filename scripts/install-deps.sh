#!/usr/bin/env bash
# Installs everything pghaul needs to build, test and run its demo on Debian 12.
# Idempotent and quiet when nothing changes: packages already present are left alone, apt-get
# update runs only when something is missing, and s3rver (the S3 server of the integration
# tests, from npm) is installed only when its pinned version is not already in place.
# Needs root (or sudo).
#
# PGHAUL_S3RVER_PREFIX overrides where s3rver goes (default /opt/pghaul-test/s3rver; the
# integration fixture reads the same variable).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates
  # the fuzz build (scripts/fuzz.sh): Clang with libFuzzer and the sanitizer runtimes
  clang libclang-rt-14-dev
  # libraries
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev libpq-dev libgtest-dev libgmock-dev libsqlite3-dev libspdlog-dev
  libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libssl-dev
  # database hosts
  postgresql-15 postgresql-contrib postgresql-client-15 pgbackrest
  # test hosts: network namespaces, process tools, certificates, node for s3rver; nftables
  # drops a share of packets for the fault suite's lossy links (the kernel may lack netem)
  iproute2 procps util-linux openssl sudo nodejs nftables
  # Patroni-managed targets (issue 9): Patroni 3.0.2 and etcd 3.4 for its DCS
  patroni etcd-server etcd-client
)

# s3rver 3.7.1 (the last release; engines node >= 8.3) runs on Debian 12's node 18 and on newer
# nodes; it is the version pgBackRest 2.45 was tried against (/work/shared/design.md).
s3rver_version="3.7.1"
s3rver_prefix="${PGHAUL_S3RVER_PREFIX:-/opt/pghaul-test/s3rver}"

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Debian's node 18 comes without npm (package `npm`); a NodeSource `nodejs` bundles npm and
# conflicts with Debian's, so the package is only asked for when the command is missing.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian creates and starts a default cluster with postgresql-15; pghaul's tests and demo
  # make their own clusters and never touch it.
fi

# The version of s3rver installed under the prefix, "" when there is none.
installed_s3rver_version() {
  local manifest="$s3rver_prefix/node_modules/s3rver/package.json"
  [[ -f "$manifest" ]] || return 0
  node -e 'process.stdout.write(String(require(process.argv[1]).version || ""))' "$manifest" \
    2>/dev/null || true
}

if [[ "$(installed_s3rver_version)" != "$s3rver_version" ]]; then
  echo "install-deps: installing s3rver@$s3rver_version into $s3rver_prefix (npm)"
  $SUDO mkdir -p "$s3rver_prefix"
  log="$(mktemp /tmp/install-deps-npm.XXXXXX)"
  if ! $SUDO npm install --prefix "$s3rver_prefix" --no-audit --no-fund --no-update-notifier \
      --save-exact "s3rver@$s3rver_version" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "install-deps: FAILED: 'npm install s3rver@$s3rver_version' into $s3rver_prefix" \
      "(npm's output above). The S3 integration tests need it; check that the npm registry" \
      "is reachable (npm config get registry) and run this script again." >&2
    exit 1
  fi
  rm -f "$log"
  if [[ "$(installed_s3rver_version)" != "$s3rver_version" ]]; then
    echo "install-deps: FAILED: npm reported success but $s3rver_prefix/node_modules/s3rver" \
      "is not version $s3rver_version" >&2
    exit 1
  fi
  # The tests run s3rver as root, but keep it readable for anyone who wants to start it.
  $SUDO chmod -R a+rX "$s3rver_prefix"
fi

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present, s3rver $s3rver_version"
fi
