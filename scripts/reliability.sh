#!/usr/bin/env bash
# FormaOps reliability and security suite (see RELIABILITY.md).
#
#   scripts/reliability.sh quick   fuzz targets (default case counts), auth, limits, tenant
#                                  isolation matrix, schemathesis (100 examples/operation),
#                                  provider faults (small). Bounded to ~25 min. Meant for .ci/run
#                                  once the open schemathesis findings are fixed (RELIABILITY.md).
#   scripts/reliability.sh full    quick + crash loop (>= 20 kill -9), SIGTERM, database outage,
#                                  soak, provider faults (large), long fuzz (PROPTEST_CASES=100000
#                                  unless set), schemathesis at 1000 examples. Bounded to ~90 min.
#
# Everything runs on 127.0.0.1: private PostgreSQL clusters (scripts/lib/pg.sh: initdb + pg_ctl
# in a temp dir on a free port, so stopping one hurts nothing else), the release `formaops`
# binary, and a fault-injecting fake OpenAI server inside the test process. Every process started is
# stopped on exit (trap). Results: reliability/runs/<mode>-<UTC time>/ (results.jsonl, logs).
#
# Knobs: PROPTEST_CASES, CRASH_KILLS (20), CRASH_RATE (6/s), OUTAGE_SECS (10), SOAK_SECS (300),
# SCHEMATHESIS_EXAMPLES, FAULT_EXECUTIONS_QUICK (30) / _FULL (200), PG_BIN
# (default: the newest /usr/lib/postgresql/*/bin), FORMAOPS_BIN (target/release/formaops), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=lib/pg.sh
source scripts/lib/pg.sh
mode="${1:-quick}"
case "$mode" in quick|full) ;; *) echo "usage: $0 quick|full" >&2; exit 2 ;; esac

stamp=$(date -u +%Y%m%dT%H%M%SZ)
export RELIABILITY_RUN_DIR="$ROOT/reliability/runs/$mode-$stamp"
mkdir -p "$RELIABILITY_RUN_DIR"
ln -sfn "$RELIABILITY_RUN_DIR" "$ROOT/reliability/runs/latest-$mode"

cleanup() {
  # Only what this run started: the server pids and Postgres data dirs the harness recorded.
  if [[ -f "$RELIABILITY_RUN_DIR/pids.txt" ]]; then
    while read -r pid; do
      if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q formaops; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    done <"$RELIABILITY_RUN_DIR/pids.txt"
  fi
  if [[ -f "$RELIABILITY_RUN_DIR/pg_dirs.txt" ]]; then
    while read -r dir; do
      pg_cluster_remove "$(dirname "$dir")"
    done <"$RELIABILITY_RUN_DIR/pg_dirs.txt"
  fi
}
trap cleanup EXIT INT TERM

echo "== reliability ($mode): fuzz targets"
if [[ "$mode" == full ]]; then
  export PROPTEST_CASES="${PROPTEST_CASES:-100000}"
  # Long fuzz: release build, bounded to 40 minutes in total.
  timeout 2400 cargo test -p formaops-core --release --test fuzz_template --test fuzz_variables --test fuzz_validation
  unset PROPTEST_CASES
else
  timeout 900 cargo test -p formaops-core --test fuzz_template --test fuzz_variables --test fuzz_validation
fi

echo "== reliability ($mode): release binary"
cargo build --release -p formaops-http --bin formaops
export FORMAOPS_BIN="${FORMAOPS_BIN:-$ROOT/target/release/formaops}"

echo "== reliability ($mode): Python environment"
PY="${PYTHON:-python3}"
VENV="$ROOT/reliability/.venv"
# shellcheck source=lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"
PYTHON="$PY" venv_ensure "$VENV"
if ! "$VENV/bin/python" -c 'import pytest, requests, psycopg, schemathesis' 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r reliability/requirements.txt -c reliability/constraints.txt
fi

echo "== reliability ($mode): system tests against the real server"
cd reliability
if [[ "$mode" == full ]]; then
  export SCHEMATHESIS_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-1000}"
  timeout 4800 "$VENV/bin/python" -m pytest -p no:cacheprovider -v -rA --junitxml="$RELIABILITY_RUN_DIR/junit.xml" .
else
  export SCHEMATHESIS_EXAMPLES="${SCHEMATHESIS_EXAMPLES:-100}"
  timeout 1500 "$VENV/bin/python" -m pytest -p no:cacheprovider -v -rA -m "not full" --junitxml="$RELIABILITY_RUN_DIR/junit.xml" .
fi
echo "results: $RELIABILITY_RUN_DIR/results.jsonl"
