#!/usr/bin/env bash
# The official `openai` Python SDK against the real `formaops` binary (tests/openai_sdk).
# Builds the binary (dev profile), creates target/openai-venv once with `openai` and `pytest`
# from PyPI, then runs the suite (a few seconds). FORMAOPS_BIN picks another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/openai-venv"
if [[ -z "${FORMAOPS_BIN:-}" ]]; then
  cargo build -p formaops-http --bin formaops
  export FORMAOPS_BIN="$target/debug/formaops"
fi
# shellcheck source=lib/venv.sh
source scripts/lib/venv.sh
venv_ensure "$venv"
if ! "$venv/bin/python" -c 'import openai, pytest' 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "openai>=1.40,<3" "pytest>=7"
fi
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/openai_sdk
