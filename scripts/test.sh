#!/usr/bin/env bash
# FormaOps test command: every Rust test (memory, SQLite and Postgres stores, HTTP router and
# end-to-end tests) and the Python suite. This is the command the README gives and .ci/run calls.
#
# Needs: a Rust toolchain, Python >= 3.9 with venv/pip (for the Python suite), and PostgreSQL:
#   DATABASE_URL=postgres://user@host:port/db   a server the tests may create databases on;
#   unset: postgres://postgres@127.0.0.1:5432/postgres is tried.
# When no server answers there, and the PostgreSQL server binaries are installed
# (/usr/lib/postgresql/*/bin, or PG_BIN), the script starts a throwaway cluster of its own on
# a free port in a temp dir (scripts/lib/pg.sh), runs the tests against it and removes it on
# exit. Without the binaries it stops and names the package to install. The Postgres suites
# never skip silently: FORMAOPS_SKIP_PG=1 skips them knowingly (printed loudly),
# FORMAOPS_SKIP_PY=1 likewise the Python suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/pg.sh
source scripts/lib/pg.sh

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

PG_TMP=""
cleanup() {
  if [[ -n "$PG_TMP" ]]; then
    pg_cluster_remove "$PG_TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "${FORMAOPS_SKIP_PG:-0}" == "1" ]]; then
  echo "!!! FORMAOPS_SKIP_PG=1: Postgres suites are SKIPPED (they are never skipped in CI)" >&2
elif ! pg_answers "$DATABASE_URL"; then
  echo "== no PostgreSQL answers at $(pg_host_port "$DATABASE_URL") (DATABASE_URL)" >&2
  if ! pg_bin_dir >/dev/null; then
    echo "ERROR: the PostgreSQL server is not installed, so no throwaway cluster can be started." >&2
    echo "  Install it:  apt-get install -y postgresql" >&2
    echo "  or point DATABASE_URL at a server, or set FORMAOPS_SKIP_PG=1 to skip those suites knowingly." >&2
    exit 1
  fi
  PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/formaops-test-pg.XXXXXX")
  pg_cluster_start "$PG_TMP"
  export DATABASE_URL="$PG_CLUSTER_URL"
  echo "== started a throwaway PostgreSQL cluster at $DATABASE_URL (removed on exit)" >&2
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
  echo "!!! FORMAOPS_SKIP_PY=1: the OpenAI SDK suite is SKIPPED (it is never skipped in CI)" >&2
else
  echo "== OpenAI SDK suite (scripts/openai-sdk-test.sh)"
  bash scripts/openai-sdk-test.sh
fi

if [[ "${FORMAOPS_SKIP_PY:-0}" == "1" ]]; then
  echo "!!! FORMAOPS_SKIP_PY=1: the Python suite is SKIPPED (it is never skipped in CI)" >&2
else
  echo "== Python suite"
  bash formaops-py/scripts/test.sh
fi
