#!/usr/bin/env bash
# FormaOps test command: every Rust test (memory, SQLite and Postgres stores, HTTP router and
# end-to-end tests) and the Python suite. This is the command the README gives and .ci/run calls.
#
# Needs: a Rust toolchain, Python >= 3.9 with venv/pip (for the Python suite), and PostgreSQL:
#   DATABASE_URL=postgres://user@host:port/db   an existing server the tests may create databases on;
#   unset: postgres://postgres@127.0.0.1:5432/postgres is tried.
# The Postgres suites never skip silently: when no server answers, this script stops and says so.
# Set FORMAOPS_SKIP_PG=1 to skip them knowingly (printed loudly), FORMAOPS_SKIP_PY=1 likewise.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if [[ "${FORMAOPS_SKIP_PG:-0}" == "1" ]]; then
  echo "!!! FORMAOPS_SKIP_PG=1: Postgres suites are SKIPPED (they are never skipped in CI)" >&2
else
  # Fail early and clearly when Postgres is not reachable.
  if command -v pg_isready >/dev/null 2>&1; then
    hostport="${DATABASE_URL#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
    host="${hostport%%:*}"; port="${hostport##*:}"; [[ "$port" == "$host" ]] && port=5432
    if ! pg_isready -q -h "$host" -p "$port"; then
      echo "ERROR: no PostgreSQL answers at $host:$port (DATABASE_URL=$DATABASE_URL)." >&2
      echo "  Start one (e.g. apt-get install postgresql && pg_ctlcluster 15 main start)," >&2
      echo "  point DATABASE_URL at one, or set FORMAOPS_SKIP_PG=1 to skip those suites knowingly." >&2
      exit 1
    fi
  fi
fi

# The Python bindings' Rust test binaries link libpython dynamically.
if pylib=$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")' 2>/dev/null); then
  export LD_LIBRARY_PATH="${pylib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

echo "== cargo test (workspace)"
# Benches are built by clippy --all-targets and run by `cargo bench` / scripts/bench.sh, not here:
# some of them load millions of rows.
cargo test --workspace --lib --bins --tests --examples
cargo test --workspace --doc

if [[ "${FORMAOPS_SKIP_PY:-0}" == "1" ]]; then
  echo "!!! FORMAOPS_SKIP_PY=1: the Python suite is SKIPPED (it is never skipped in CI)" >&2
else
  echo "== Python suite"
  bash formaops-py/scripts/test.sh
fi
