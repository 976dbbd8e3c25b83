#!/usr/bin/env bash
# A throwaway PostgreSQL cluster: initdb + pg_ctl in a directory of its own, on a free port,
# listening on 127.0.0.1 only, trust authentication, superuser `postgres`. Stopping and
# removing it hurts nothing else. The one copy of this logic: scripts/test.sh and
# scripts/reliability.sh source it, reliability/harness.py runs it as a command.
#
# Functions (after `source scripts/lib/pg.sh`):
#   pg_bin_dir               prints the server binaries' directory: $PG_BIN, else the newest
#                            /usr/lib/postgresql/*/bin with initdb and pg_ctl; fails if none
#   pg_answers URL           succeeds when a PostgreSQL server answers at URL
#   pg_host_port URL         prints HOST:PORT of a postgres:// URL (no user, no password)
#   pg_cluster_start DIR [PORT]
#                            initdb into DIR/data unless it exists, then start on PORT (default:
#                            the port of an earlier start, else a free one); sets PG_CLUSTER_PORT
#                            and PG_CLUSTER_URL (postgres://postgres@127.0.0.1:PORT/postgres)
#   pg_cluster_stop DIR [MODE]
#                            pg_ctl stop -m MODE (fast by default) when it is running
#   pg_cluster_remove DIR    stop (immediate) and delete DIR, only if DIR is such a cluster
#
# As a command: pg.sh start DIR [PORT] (prints the URL) | stop DIR [MODE] | remove DIR.
#
# initdb refuses to run as root: as root, initdb and pg_ctl run as the `postgres` user (which
# the postgresql package creates) and DIR is handed to it. The server log is DIR/postgres.log.
# Extra server settings: PG_CLUSTER_OPTS (e.g. "-c fsync=off").

# The file that marks DIR as a cluster made here (pg_cluster_remove deletes nothing else).
PG_CLUSTER_MARK=formaops-pg-cluster

pg_bin_dir() {
  local dir
  if [[ -n "${PG_BIN:-}" ]]; then
    [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || { echo "PG_BIN=$PG_BIN has no initdb and pg_ctl" >&2; return 1; }
    echo "$PG_BIN"
    return 0
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5nr); do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

pg_host_port() {
  local url=$1 hostport host port
  hostport="${url#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"; hostport="${hostport%%\?*}"
  host="${hostport%:*}"; port="${hostport##*:}"
  [[ "$port" == "$hostport" ]] && port=5432
  [[ -z "$host" ]] && host=127.0.0.1
  echo "$host:$port"
}

pg_answers() {
  local url=$1 hostport
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -t 5 -d "$url" >/dev/null 2>&1
    return
  fi
  # No client tools: a TCP connection to the URL's host and port is the best we can check.
  hostport=$(pg_host_port "$url")
  timeout 5 bash -c "exec 3<>/dev/tcp/${hostport%:*}/${hostport##*:}" 2>/dev/null
}

_pg_as_owner() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_pg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_cluster_start() {
  local dir=$1 port=${2:-} bin
  bin=$(pg_bin_dir) || { echo "no PostgreSQL server binaries (initdb, pg_ctl) found" >&2; return 1; }
  mkdir -p "$dir"
  touch "$dir/$PG_CLUSTER_MARK"
  if [[ -z "$port" && -f "$dir/port" ]]; then
    port=$(<"$dir/port")
  fi
  [[ -n "$port" ]] || port=$(_pg_free_port) || return 1
  echo "$port" >"$dir/port"
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || { echo "running as root needs the postgres user (apt-get install -y postgresql)" >&2; return 1; }
    chown postgres:postgres "$dir"
  fi
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    if ! _pg_as_owner "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 >"$dir/initdb.log" 2>&1; then
      cat "$dir/initdb.log" >&2
      return 1
    fi
  fi
  local opts="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_CLUSTER_OPTS:-}"
  if ! _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "$opts" -w -t 60 start >/dev/null; then
    tail -n 20 "$dir/postgres.log" >&2 2>/dev/null
    return 1
  fi
  PG_CLUSTER_PORT=$port
  PG_CLUSTER_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

pg_cluster_stop() {
  local dir=$1 mode=${2:-fast} bin
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  bin=$(pg_bin_dir) || return 1
  _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1 || true
}

pg_cluster_remove() {
  local dir=$1
  [[ -n "$dir" && -f "$dir/$PG_CLUSTER_MARK" ]] || return 0
  pg_cluster_stop "$dir" immediate
  rm -rf -- "$dir"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    start) pg_cluster_start "${2:?DIR}" "${3:-}"; echo "$PG_CLUSTER_URL" ;;
    stop) pg_cluster_stop "${2:?DIR}" "${3:-fast}" ;;
    remove) pg_cluster_remove "${2:?DIR}" ;;
    *) echo "usage: $0 start DIR [PORT] | stop DIR [MODE] | remove DIR" >&2; exit 2 ;;
  esac
fi
