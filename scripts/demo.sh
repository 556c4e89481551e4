#!/usr/bin/env bash
# Local demo of pghaul's foundation, on one machine: two throwaway PostgreSQL 15 clusters
# ("legacy" and "target", unix sockets only, in a temporary directory), a pghaul-controller on
# 127.0.0.1 (a free port), and one pghaul-agent per cluster. Waits until both agents are online,
# prints `pghaul agents` and `pghaul agents show legacy`, then stops everything it started (by PID)
# and removes the directory, unless --keep is given.
#
# Needs root (the clusters and agents run as the postgres OS user) and the packages of
# scripts/install-deps.sh. Builds into build/ (or $PGHAUL_BUILD_DIR) when the binaries are missing.
set -euo pipefail

usage() { echo "usage: $0 [--keep]" >&2; }
keep=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage; exit 64 ;;
  esac
done

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${PGHAUL_BUILD_DIR:-$repo/build}"
pgbin=/usr/lib/postgresql/15/bin
controller_bin="$build/controller/pghaul-controller"
agent_bin="$build/agent/pghaul-agent"
cli_bin="$build/cli/pghaul"

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root: the clusters and agents run as the postgres OS user" >&2
  exit 1
fi

if [[ ! -x "$controller_bin" || ! -x "$agent_bin" || ! -x "$cli_bin" ]]; then
  echo "== building pghaul into $build"
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" --target pghaul-controller pghaul-agent pghaul
fi

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

demo="$(mktemp -d /tmp/pghaul-demo-XXXXXX)"
chmod 0755 "$demo"
pids=()
clusters=()

cleanup() {
  local status=$?
  if ((keep)); then
    echo
    echo "== --keep: left running (stop them by PID, then remove $demo):"
    echo "   processes: ${pids[*]:-none}"
    for data in "${clusters[@]}"; do
      echo "   cluster: runuser -u postgres -- $pgbin/pg_ctl -D $data stop"
    done
    return
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  for data in "${clusters[@]}"; do
    as_postgres "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
  done
  rm -rf "$demo"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "demo.sh: timed out after ${seconds}s waiting for $what" >&2
      return 1
    fi
    sleep 0.2
  done
}

echo "== PostgreSQL 15 clusters in $demo"
port=5433
for name in legacy target; do
  dir="$demo/$name"
  mkdir -p "$dir/run" "$dir/agent-state"
  chown -R postgres:postgres "$dir"
  as_postgres "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync >"$dir/initdb.log"
  cat >>"$dir/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$dir/run'
listen_addresses = ''
shared_buffers = 16MB
CONF
  clusters+=("$dir/data")
  as_postgres "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w start >/dev/null
  echo "   $name: $dir/data, socket $dir/run/.s.PGSQL.$port"
  port=$((port + 1))
done

echo "== pghaul-controller"
mkdir -p "$demo/controller/state"
cat >"$demo/controller/controller.yaml" <<CONF
listen: 127.0.0.1:0
insecure: true
state_dir: $demo/controller/state
heartbeat_interval: 500ms
missed_heartbeats: 3
log: {level: info, format: text}
CONF
"$controller_bin" --config "$demo/controller/controller.yaml" \
  >"$demo/controller/controller.log" 2>&1 </dev/null &
pids+=($!)
wait_until 15 "the controller's listen-address" test -s "$demo/controller/state/listen-address"
address="$(cat "$demo/controller/state/listen-address")"
echo "   listening on $address (log: $demo/controller/controller.log)"

echo "== pghaul-agents"
port=5433
for name in legacy target; do
  dir="$demo/$name"
  cat >"$dir/agent.yaml" <<CONF
agent_id: $name
controller: {address: "$address", insecure: true}
postgres: {socket_dir: $dir/run, port: $port, user: postgres, database: postgres}
data_directory: $dir/data
pgbackrest: {binary: /usr/bin/pgbackrest}
state_dir: $dir/agent-state
facts_interval: 5s
reconnect: {initial: 200ms, max: 2s}
log: {level: info, format: text}
CONF
  # A simple command, not a shell function, so $! is the agent's own PID: bash forks and execs
  # setpriv, which execs the agent (runuser would fork again).
  setpriv --reuid=postgres --regid=postgres --init-groups \
    "$agent_bin" --config "$dir/agent.yaml" >"$dir/agent.log" 2>&1 </dev/null &
  pids+=($!)
  echo "   $name (log: $dir/agent.log)"
  port=$((port + 1))
done

online() {
  "$cli_bin" --controller "$address" agents show "$1" --output json | grep -Eq '"online": *true'
}
for name in legacy target; do wait_until 20 "agent $name to be online" online "$name"; done

echo
echo "\$ pghaul --controller $address agents"
"$cli_bin" --controller "$address" agents
echo
echo "\$ pghaul --controller $address agents show legacy"
"$cli_bin" --controller "$address" agents show legacy
