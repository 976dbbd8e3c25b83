#!/usr/bin/env bash
# Web console checks (formaops-http/ui), as .ci/run runs them:
#   1. installs Debian's Chromium if missing (Playwright's own browser download is not used);
#   2. `npm ci && npm run build` and fails if the committed bundle (ui/dist) differs from a
#      fresh build of the same sources and lockfile;
#   3. the Vitest unit tests;
#   4. the browser suite (playwright-core driving /usr/bin/chromium) against the real
#      `formaops` binary, built here so it embeds the bundle just checked.
# Screenshots of each step land in formaops-http/ui/artifacts/ (gitignored).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ui=formaops-http/ui

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (apt-get)"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi

echo "== console: npm ci && npm run build"
(cd "$ui" && npm ci --no-audit --no-fund && npm run build)
if ! git diff --exit-code --stat -- "$ui/dist" || [[ -n "$(git status --porcelain -- "$ui/dist")" ]]; then
  echo "ERROR: the committed console bundle ($ui/dist) differs from a fresh build:" >&2
  git status --porcelain -- "$ui/dist" >&2
  echo "  run 'npm ci && npm run build' in $ui and commit dist/" >&2
  exit 1
fi

echo "== console: vitest"
(cd "$ui" && npx vitest run)

echo "== console: browser suite against the formaops binary"
cargo build -p formaops-http --bin formaops
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$ui" && FORMAOPS_BIN="$target/debug/formaops" node e2e/console-flow.mjs)
