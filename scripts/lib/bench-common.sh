#!/usr/bin/env bash
# What scripts/bench.sh and scripts/pg-profile.sh share: logging, stopping processes, bench's
# mock OpenAI server, `formaops serve` with the mock as its OpenAI-compatible provider, and the
# bench account and prompt. The one copy of this logic; source it, do not run it.
#
# The caller sets, before calling the functions:
#   WORK   a private temp directory (logs, port files, server config)
#   BIN    the directory holding the release binaries formaops, mock-openai, loadgen
#   PIDS   an array; every process started here is appended, the caller stops them on exit
#          (stop_pid each one from its EXIT trap)
#   PROVIDER_CONCURRENCY  provider calls in flight the server allows (start_server)
#   OPENAI_RATES          when not blank, setup_prompt also checks /openai/v1/chat/completions
#   BENCH_LOG_TAG         prefix of log lines (default "bench")
#
# Functions:
#   log MSG... / die MSG...     log to stderr / log and exit 1
#   stop_pid PID                SIGTERM, then SIGKILL after 5 s
#   free_port                   prints a free loopback TCP port
#   stop_started                stop_pid every process in PIDS (for the caller's EXIT trap)
#   preflight                   dies unless curl, jq, psql and python3 are on PATH; raises the
#                               open-files limit for the load generator's connections
#   wait_alive PID WHAT LOG     dies with LOG's tail when PID has exited
#   wait_http PID WHAT LOG URL SECONDS
#                               polls URL every 0.1 s until it answers 2xx; dies with LOG's tail
#                               when PID exits or SECONDS pass
#   start_mock                  starts mock-openai on loopback; sets MOCK_PID and MOCK (base URL)
#   mock_requests               requests the mock has answered
#   set_mock_latency MS         the mock's added latency
#   start_server STORE URL [DURABILITY]
#                               `formaops serve` on a free loopback port against database URL;
#                               sets SERVER_PID and API
#   setup_prompt                logs in as the bench admin, creates the bench prompt, runs one
#                               execution through the mock; sets TOKEN (exported as BENCH_TOKEN)
#                               and PROMPT_ID
#   db_url URL NAME             prints URL with its database replaced by NAME
# Request bodies: DIRECT_BODY (the mock called directly), PROMPT_BODY, EXEC_BODY + EXPECT_VIA
# (REST execute), OPENAI_BODY + EXPECT_OPENAI (the OpenAI-compatible endpoint).

log() { printf '[%s %s] %s\n' "${BENCH_LOG_TAG:-bench}" "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stop_pid() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "process $pid ignored SIGTERM for 5 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_started() { local pid; for pid in "${PIDS[@]:-}"; do [[ -n "$pid" ]] && stop_pid "$pid"; done; return 0; }

preflight() {
  local tool
  for tool in curl jq psql python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
  done
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

wait_alive() { # pid, what, log file
  kill -0 "$1" 2>/dev/null && return 0
  log "$2 exited; last log lines:"; tail -n 30 "$3" >&2 || true
  die "$2 did not start"
}

wait_http() { # pid, what, log file, url, seconds
  local i
  for ((i = 0; i < $5 * 10; i++)); do
    wait_alive "$1" "$2" "$3"
    curl -fsS -o /dev/null "$4" 2>/dev/null && return 0
    sleep 0.1
  done
  tail -n 30 "$3" >&2 || true
  die "$2 not answering $4 within $5 s"
}

# ---------------------------------------------------------------- mock provider
start_mock() {
  "$BIN/mock-openai" --port 0 --port-file "$WORK/mock.port" --threads 1 >"$WORK/mock.log" 2>&1 &
  MOCK_PID=$!; PIDS+=("$MOCK_PID")
  for _ in $(seq 1 100); do [[ -s "$WORK/mock.port" ]] && break; wait_alive "$MOCK_PID" mock-openai "$WORK/mock.log"; sleep 0.1; done
  [[ -s "$WORK/mock.port" ]] || die "mock-openai did not report its port within 10 s"
  MOCK="http://127.0.0.1:$(cat "$WORK/mock.port")"
  log "mock-openai at $MOCK (pid $MOCK_PID)"
}
mock_requests() { curl -fsS "$MOCK/_bench/stats" | jq -r .requests; }
set_mock_latency() { curl -fsS -X PUT "$MOCK/_bench/latency?ms=$1" >/dev/null; }

DIRECT_BODY='{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Answer in JSON."},{"role":"user","content":"Classify the sentiment of this review and answer in JSON: Fast delivery, the blender works great."}],"temperature":0}'
PROMPT_BODY='{
  "name": "bench-sentiment",
  "description": "load harness prompt",
  "systemTemplate": "Answer in JSON.",
  "template": "Classify the sentiment of this review and answer in JSON: {{ review }}",
  "variables": [
    {"name": "review", "type": "string", "required": true},
    {"name": "language", "type": "string", "required": false, "defaultValue": "English"}
  ],
  "validations": [{"type": "json"}, {"type": "max_length", "value": 2000}],
  "model": {"provider": "openai", "model": "gpt-4o-mini", "parameters": {"temperature": 0}}
}'
EXEC_BODY='{"inputs":{"review":"Fast delivery, the blender works great."},"validateOutput":true}'
EXPECT_VIA='"status":"COMPLETED"'
# The same prompt and inputs through the OpenAI-compatible endpoint (output validated too).
# A reply that is not COMPLETED is an error status there (502/504), so 200 + a completion body
# is the same check.
OPENAI_BODY='{"model":"formaops::bench-sentiment","inputs":{"review":"Fast delivery, the blender works great."},"validate_output":true}'
EXPECT_OPENAI='"object":"chat.completion"'

ADMIN_EMAIL="bench@formaops.invalid"
export BENCH_ADMIN_PASSWORD="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# ---------------------------------------------------------------- server
start_server() { # store, database url[, durability] -> sets SERVER_PID, API
  local store="$1" url="$2" durability="${3:-strict}" port
  port=$(free_port)
  API="http://127.0.0.1:$port"
  # The mock as the `openai` provider, from the environment (OPENAI_BASE_URL / OPENAI_API_KEY)
  # and, to set its concurrency bound, from a config file (the engine's default is 16 calls in
  # flight per provider, which caps a 20 ms provider at 800/s).
  cat >"$WORK/formaops-$store.toml" <<TOML
[llm]
default = "openai"

[llm.providers.openai]
kind = "openai"
base_url = "$MOCK/v1"
api_key_env = "OPENAI_API_KEY"
concurrency = $PROVIDER_CONCURRENCY
TOML
  env DATABASE_URL="$url" FORMAOPS_CONFIG="$WORK/formaops-$store.toml" \
      OPENAI_BASE_URL="$MOCK/v1" OPENAI_API_KEY=bench \
      FORMAOPS_ADMIN_EMAIL="$ADMIN_EMAIL" FORMAOPS_ADMIN_PASSWORD="$BENCH_ADMIN_PASSWORD" \
      FORMAOPS_BIND="127.0.0.1:$port" RUST_LOG="${BENCH_RUST_LOG:-warn}" \
      "$BIN/formaops" serve --bind "127.0.0.1:$port" --durability "$durability" >"$WORK/server-$store.log" 2>&1 &
  SERVER_PID=$!; PIDS+=("$SERVER_PID")
  wait_http "$SERVER_PID" "formaops serve ($store)" "$WORK/server-$store.log" "$API/api/health" 60
  log "formaops serve ($store, durability $durability) at $API (pid $SERVER_PID)"
}

setup_prompt() { # -> sets TOKEN (exported as BENCH_TOKEN), PROMPT_ID
  local login
  login=$(jq -n --arg e "$ADMIN_EMAIL" --arg p "$BENCH_ADMIN_PASSWORD" '{email:$e,password:$p}' |
    curl -sS -H 'content-type: application/json' --data-binary @- "$API/api/auth/login")
  TOKEN=$(jq -r '.token // empty' <<<"$login")
  [[ -n "$TOKEN" ]] || die "login failed: $(jq -c '.error // .' <<<"$login" 2>/dev/null || echo "$login")"
  export BENCH_TOKEN="$TOKEN"
  local created
  created=$(curl -sS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    --data-binary "$PROMPT_BODY" "$API/api/prompts")
  PROMPT_ID=$(jq -r '.id // .prompt.id // empty' <<<"$created")
  [[ -n "$PROMPT_ID" ]] || die "creating the prompt failed: $created"
  # One execution end to end, and proof that it reached the mock (not a built-in provider).
  local before after res
  before=$(mock_requests)
  res=$(curl -sS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    --data-binary "$EXEC_BODY" "$API/api/prompts/$PROMPT_ID/execute")
  after=$(mock_requests)
  grep -qF "$EXPECT_VIA" <<<"$res" || die "a test execution did not complete: $res"
  [[ "$after" -gt "$before" ]] || die "the execution did not reach mock-openai (provider not configured?): $res"
  if [[ -n "${OPENAI_RATES// /}" ]]; then
    res=$(curl -sS -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
      --data-binary "$OPENAI_BODY" "$API/openai/v1/chat/completions")
    grep -qF "$EXPECT_OPENAI" <<<"$res" || die "a call of /openai/v1/chat/completions did not complete: $res"
  fi
  log "prompt $PROMPT_ID ready; one execution completed through the mock"
}

db_url() { # url, database name
  python3 -c 'import sys, urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$1" "$2"
}
