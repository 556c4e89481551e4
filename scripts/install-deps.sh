#!/usr/bin/env bash
# Installs everything pghaul needs to build, test and run its demo on Debian 12.
# Idempotent: packages already present are left alone; apt-get update runs only when
# something is missing. Needs root (or sudo).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates
  # libraries
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc protobuf-compiler libprotobuf-dev
  libabsl-dev libpq-dev libgtest-dev libgmock-dev libsqlite3-dev libspdlog-dev
  libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libssl-dev
  # database hosts
  postgresql-15 postgresql-contrib postgresql-client-15 pgbackrest
  # test hosts: network namespaces, process tools
  iproute2 procps util-linux openssl sudo
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

# Debian creates and starts a default cluster with postgresql-15; pghaul's tests and demo
# make their own clusters and never touch it.
