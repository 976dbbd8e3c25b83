#!/usr/bin/env bash
# Python suite of FormaOps: builds the extension into a virtual environment and runs pytest.
#
#   formaops-py/scripts/test.sh            (from anywhere; scripts/test.sh at the root calls it)
#
# Creates target/py-venv (python3 -m venv) once, installs maturin, pytest and mypy from PyPI,
# builds and installs the package with `maturin develop` (dev profile, so it reuses the
# workspace's test build; FORMAOPS_PY_RELEASE=1 builds with --release), checks the type stubs
# against the built module (mypy stubtest), then runs pytest. pytest collecting no tests
# (exit code 5) is a failure. Postgres tests run when DATABASE_URL is set, and say so loudly
# when they are skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
venv="${FORMAOPS_PY_VENV:-$root/target/py-venv}"
python="${PYTHON:-python3}"

# shellcheck source=../../scripts/lib/venv.sh
source "$root/scripts/lib/venv.sh"
PYTHON="$python" venv_ensure "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
python -m pip install --quiet --disable-pip-version-check "maturin>=1.16,<2" "pytest>=7" "mypy>=1.10"

cd "$here"
echo "== maturin develop"
if [[ "${FORMAOPS_PY_RELEASE:-0}" == "1" ]]; then
  maturin develop --release
else
  maturin develop
fi

echo "== stubtest"
python -m mypy.stubtest formaops._formaops

echo "== pytest"
if [[ -z "${DATABASE_URL:-}" ]]; then
  echo "!!! DATABASE_URL is not set: the Python suite's Postgres tests will be SKIPPED" >&2
fi
set +e
python -m pytest tests "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "ERROR: pytest collected no tests" >&2
  exit 1
fi
exit $status
