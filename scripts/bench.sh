#!/usr/bin/env bash
# FormaOps load harness (issue 8): added latency, throughput, CPU per execution, peak RSS.
#
#   scripts/bench.sh quick    # < 2 minutes once built; CI smoke: fails on errors, never on timing
#   scripts/bench.sh full     # the report figures (about 10 minutes plus the scale step)
#
# Builds release binaries, starts bench's `mock-openai` on loopback, then for each store
# (SQLite in a temp file, Postgres in a fresh database on DATABASE_URL) starts `formaops serve`
# with the mock as its OpenAI-compatible provider, logs in, creates a prompt, and measures in
# the same run: the mock called directly vs through `POST /api/prompts/{id}/execute`
# (synchronous) at fixed rates and a search for the highest sustainable rate; at the rates in
# BENCH_OPENAI_RATES, right after each REST execute run, the same prompt with the same inputs
# through the OpenAI-compatible `POST /openai/v1/chat/completions` (`model:
# "formaops::bench-sentiment"`, `inputs` in the body) at the same offered load. Results (one
# JSON per run, report.json, report.md) go to bench-results/<timestamp>-<mode>/ and are printed.
#
# Environment (all optional):
#   SEARCH_P99_MS       p99 bound of a sustained rate in the search (default 100)
#   DATABASE_URL        Postgres server to create the bench database on
#                       (default postgres://postgres@127.0.0.1:5432/postgres)
#   BENCH_STORES        stores to measure (default: quick "sqlite postgres", full "sqlite postgres
#                       sqlite-relaxed postgres-relaxed"; a "-relaxed" store runs the server with
#                       `--durability relaxed`; "none": only the scale step)
#   BENCH_PEERS         peer gateways measured against the same mock in the same run (default:
#                       quick "", full "litellm": LiteLLM's proxy from PyPI, see peer_litellm)
#   BENCH_LITELLM_VERSION  litellm[proxy] version installed for the peer run (default 1.108.5)
#   BENCH_PROVIDER_CONCURRENCY  provider calls in flight the server allows (default 256)
#   BENCH_OPENAI_RATES  rates at which the OpenAI-compatible endpoint is measured next to REST
#                       execute (default: quick "100", full "100 1000"; "" skips it)
#   BENCH_PERF=1       sample the server with `perf record` during the 1,000/s run (perf-<store>.txt)
#   BENCH_SKIP_BUILD=1  use the binaries already in target/release
#   BENCH_SCALE=0       full mode: skip the scale step (10M-row listing, insert rate, metrics)
#   BENCH_SCALE_ROWS    rows for the scale step (default 10000000)
#   BENCH_SCALE_MAX_LOAD_S  time budget for loading rows when no copy can be taken (default 600)
#
# Loopback only: every process binds 127.0.0.1 and the generator refuses other targets.
# Every run is bounded in time and requests; every process started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

MODE="${1:-quick}"
case "$MODE" in
  quick)
    DURATION=3; WARMUP=0.5; RATES="100 1000"; MOCK_LATENCIES="0"
    SEARCH_PATHS="via"; SEARCH_LATENCY=0; SEARCH_START_VIA=100; SEARCH_START_DIRECT=1000; SEARCH_MAX=8000
    SEARCH_STEPS=3; SEARCH_STEP_S=2; OPENAI_RATES="100"
    DEFAULT_STORES="sqlite postgres"; DEFAULT_PEERS=""
    ;;
  full)
    DURATION=10; WARMUP=2; RATES="100 1000"; MOCK_LATENCIES="0 20"
    SEARCH_PATHS="direct via"; SEARCH_LATENCY=0; SEARCH_START_VIA=200; SEARCH_START_DIRECT=1000; SEARCH_MAX=32000
    SEARCH_STEPS=7; SEARCH_STEP_S=4; OPENAI_RATES="100 1000"
    DEFAULT_STORES="sqlite postgres sqlite-relaxed postgres-relaxed"; DEFAULT_PEERS="litellm"
    ;;
  *)
    echo "usage: scripts/bench.sh quick|full" >&2; exit 2 ;;
esac
# A rate is sustained when nothing fails or is dropped and p99 (from the scheduled send time)
# stays under this bound: past the knee, queueing pushes p99 to seconds within a step.
SEARCH_P99_MS="${SEARCH_P99_MS:-100}"
OPENAI_RATES="${BENCH_OPENAI_RATES-$OPENAI_RATES}"
MAX_IN_FLIGHT=512
PROVIDER_CONCURRENCY="${BENCH_PROVIDER_CONCURRENCY:-256}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
STORES="${BENCH_STORES:-$DEFAULT_STORES}"
PEERS="${BENCH_PEERS-$DEFAULT_PEERS}"
LITELLM_VERSION="${BENCH_LITELLM_VERSION:-1.108.5}"

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-$MODE"
OUT="$ROOT/bench-results/$RUN_ID"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/formaops-bench.XXXXXX)"
PIDS=()
PG_DBS=()

# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"

cleanup() {
  local status=$?
  stop_started
  for db in "${PG_DBS[@]:-}"; do
    [[ -n "$db" ]] && psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

preflight

# ---------------------------------------------------------------- build
if [[ "${BENCH_SKIP_BUILD:-0}" != "1" ]]; then
  log "building release binaries (formaops, mock-openai, loadgen)"
  cargo build --release -q -p formaops-http -p formaops-bench --bins
fi
BIN="$ROOT/target/release"
for b in formaops mock-openai loadgen; do [[ -x "$BIN/$b" ]] || die "missing $BIN/$b"; done

# ---------------------------------------------------------------- mock provider
start_mock

run_pair() { # store, mock_ms, rate
  local store="$1" ms="$2" rate="$3" common
  common=(--method POST --max-in-flight "$MAX_IN_FLIGHT" --warmup "$WARMUP" --threads 1
          --tag "store=$store" --tag "mock_ms=$ms")
  "$BIN/loadgen" run "${common[@]}" --url "$MOCK/v1/chat/completions" --body "$DIRECT_BODY" \
    --expect-status 200 --tag path=direct --label "$store direct ${ms}ms" \
    --rate "$rate" --duration "$DURATION" --json-out "$OUT/$store-${ms}ms-direct-$rate.json"
  local before after perf_pid=""
  if [[ "${BENCH_PERF:-0}" == 1 && "$ms" == 0 && "$rate" == 1000 ]] && command -v perf >/dev/null; then
    # Sample the server's on-CPU stacks during this run (flat profile by symbol and by DSO).
    perf record -q -F 499 -g -p "$SERVER_PID" -o "$WORK/perf-$store.data" -- sleep "$DURATION" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  before=$(mock_requests)
  local commits_before=""
  [[ "$store" == postgres ]] && commits_before=$(pg_commits)
  "$BIN/loadgen" run "${common[@]}" --url "$API/api/prompts/$PROMPT_ID/execute" --body "$EXEC_BODY" \
    --bearer-env BENCH_TOKEN --expect-status 200 --expect-body "$EXPECT_VIA" --server-pid "$SERVER_PID" \
    --tag path=via --label "$store via ${ms}ms" \
    --rate "$rate" --duration "$DURATION" --json-out "$OUT/$store-${ms}ms-via-$rate.json"
  after=$(mock_requests)
  log "mock answered $((after - before)) provider calls during the via run (incl. warmup)"
  if [[ -n "$commits_before" ]]; then
    # Transactions committed in the bench database per execution (each a WAL flush unless
    # grouped): where durable-write latency comes from.
    sleep 1.5 # backends flush their statistics at most once a second
    local commits=$(( $(pg_commits) - commits_before )) calls=$((after - before))
    echo "mock ${ms}ms rate $rate: $commits commits for $calls executions ($(python3 -c "print(round($commits / max($calls, 1), 2))") per execution)" \
      | tee -a "$OUT/postgres-commits.txt" >&2
  fi
  if [[ -n "$perf_pid" ]]; then
    wait "$perf_pid" || true
    { echo "## by DSO"
      perf report -q -i "$WORK/perf-$store.data" --no-children --sort dso --stdio -g none 2>/dev/null | head -n 15 || true
      echo "## by symbol (self)"
      perf report -q -i "$WORK/perf-$store.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null | head -n 60 || true
      echo "## by symbol (with children, caller side)"
      perf report -q -i "$WORK/perf-$store.data" --children --sort symbol --stdio -g none 2>/dev/null | head -n 60 || true
    } >"$OUT/perf-$store.txt"
    cp "$WORK/perf-$store.data" "$OUT/perf-$store.data" 2>/dev/null || true
    log "server profile during the 1000/s run: $OUT/perf-$store.txt"
  fi
  if [[ " $OPENAI_RATES " == *" $rate "* ]]; then
    # Right after REST execute, at the same offered load: the OpenAI-compatible endpoint.
    local ob oa
    ob=$(mock_requests)
    "$BIN/loadgen" run "${common[@]}" --url "$API/openai/v1/chat/completions" --body "$OPENAI_BODY" \
      --bearer-env BENCH_TOKEN --expect-status 200 --expect-body "$EXPECT_OPENAI" --server-pid "$SERVER_PID" \
      --tag path=openai --label "$store openai ${ms}ms" \
      --rate "$rate" --duration "$DURATION" --json-out "$OUT/$store-${ms}ms-openai-$rate.json"
    oa=$(mock_requests)
    log "mock answered $((oa - ob)) provider calls during the openai run (incl. warmup)"
    [[ "$oa" -gt "$ob" ]] || die "the openai runs did not reach mock-openai"
  fi
}

pg_commits() { psql -XAtq "$PG_URL" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }

run_search() { # store, path
  local store="$1" path="$2" args start="$SEARCH_START_VIA"
  [[ "$path" == direct ]] && start="$SEARCH_START_DIRECT"
  args=(--method POST --max-in-flight "$MAX_IN_FLIGHT" --threads 1 --warmup "$WARMUP"
        --tag "store=$store" --tag "mock_ms=$SEARCH_LATENCY" --tag "path=$path"
        --start-rate "$start" --max-rate "$SEARCH_MAX" --max-steps "$SEARCH_STEPS"
        --step-duration "$SEARCH_STEP_S" --p99-bound-ms "$SEARCH_P99_MS" --timeout-ms 5000
        --label "$store $path search" --json-out "$OUT/$store-search-$path.json")
  if [[ "$path" == direct ]]; then
    "$BIN/loadgen" search "${args[@]}" --url "$MOCK/v1/chat/completions" --body "$DIRECT_BODY" --expect-status 200
  else
    "$BIN/loadgen" search "${args[@]}" --url "$API/api/prompts/$PROMPT_ID/execute" --body "$EXEC_BODY" \
      --bearer-env BENCH_TOKEN --expect-status 200 --expect-body "$EXPECT_VIA" --server-pid "$SERVER_PID"
  fi
}

[[ "$STORES" == none ]] && STORES=""
DIRECT_SEARCHED=0
for store in $STORES; do
  durability=strict
  [[ "$store" == *-relaxed ]] && durability=relaxed
  case "${store%-relaxed}" in
    sqlite) URL="sqlite:///$WORK/bench-$store.db" ;;
    postgres)
      pg_isready -q -d "$DATABASE_URL" 2>/dev/null || die "no PostgreSQL answers at DATABASE_URL=$DATABASE_URL"
      DB="formaops_bench_$$_$RANDOM"
      psql -q "$DATABASE_URL" -c "CREATE DATABASE \"$DB\"" >/dev/null
      PG_DBS+=("$DB")
      URL=$(db_url "$DATABASE_URL" "$DB")
      PG_URL="$URL"
      ;;
    memory) URL="memory://" ;;
    *) die "unknown store $store (sqlite, postgres, memory, each optionally with -relaxed)" ;;
  esac
  start_server "$store" "$URL" "$durability"
  setup_prompt
  for ms in $MOCK_LATENCIES; do
    set_mock_latency "$ms"
    for rate in $RATES; do run_pair "$store" "$ms" "$rate"; done
    if [[ "$ms" == "$SEARCH_LATENCY" ]]; then
      for path in $SEARCH_PATHS; do
        # The mock alone is searched once per run: it does not depend on the store.
        if [[ "$path" == direct ]]; then
          [[ "$DIRECT_SEARCHED" == 1 ]] && continue
          DIRECT_SEARCHED=1
        fi
        run_search "$store" "$path"
      done
    fi
  done
  set_mock_latency 0
  log "formaops serve ($store): peak RSS $(awk '/VmHWM/{print $2, $3}' "/proc/$SERVER_PID/status")"
  cp "$WORK/server-$store.log" "$OUT/server-$store.log"
  stop_pid "$SERVER_PID"
done

# ---------------------------------------------------------------- peers
# LiteLLM's proxy, the gateway our users would otherwise pick, against the same mock at the same
# rates in the same run: litellm[proxy] from PyPI in its own venv, 2 uvicorn workers, spend logs
# off and no database (it persists nothing per request, unlike FormaOps), a master key so that
# requests are authenticated as FormaOps' are. Its runs are tagged store=litellm, so the report
# pairs them with the mock called directly and sets them next to FormaOps.
peer_litellm() {
  local venv="$ROOT/target/peers/litellm-$LITELLM_VERSION" port lpid key="sk-bench-$RANDOM$RANDOM"
  # shellcheck source=scripts/lib/venv.sh
  source "$ROOT/scripts/lib/venv.sh"
  venv_ensure "$venv"
  if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null; then
    log "installing litellm[proxy]==$LITELLM_VERSION from PyPI into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "litellm[proxy]==$LITELLM_VERSION"
  fi
  port=$(free_port)
  cat >"$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: $MOCK/v1
      api_key: bench
general_settings:
  disable_spend_logs: true
YAML
  # LITELLM_LOCAL_MODEL_COST_MAP: use the bundled price map (no fetch from GitHub at start).
  # No DATABASE_URL: LiteLLM would use it for its own tables (it needs none to proxy).
  (cd "$WORK" && exec env -u DATABASE_URL LITELLM_MASTER_KEY="$key" LITELLM_LOCAL_MODEL_COST_MAP=True \
    setsid "$venv/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$port" \
    --num_workers 2 >"$WORK/litellm.log" 2>&1) &
  lpid=$!; PIDS+=("$lpid")
  wait_http "$lpid" "litellm proxy" "$WORK/litellm.log" "http://127.0.0.1:$port/health/liveliness" 180
  export BENCH_PEER_TOKEN="$key"
  local url="http://127.0.0.1:$port/v1/chat/completions" res
  res=$(curl -sS -H "authorization: Bearer $key" -H 'content-type: application/json' --data-binary "$DIRECT_BODY" "$url")
  grep -qF '"chat.completion"' <<<"$res" || die "a call through the litellm proxy failed: $res"
  log "litellm $LITELLM_VERSION proxy at http://127.0.0.1:$port (pid $lpid, 2 workers)"
  local ms rate common
  for ms in $MOCK_LATENCIES; do
    set_mock_latency "$ms"
    for rate in $RATES; do
      common=(--method POST --max-in-flight "$MAX_IN_FLIGHT" --warmup "$WARMUP" --threads 1
              --tag store=litellm --tag "mock_ms=$ms" --rate "$rate" --duration "$DURATION")
      "$BIN/loadgen" run "${common[@]}" --url "$MOCK/v1/chat/completions" --body "$DIRECT_BODY" \
        --expect-status 200 --tag path=direct --label "litellm direct ${ms}ms" \
        --json-out "$OUT/litellm-${ms}ms-direct-$rate.json"
      "$BIN/loadgen" run "${common[@]}" --url "$url" --body "$DIRECT_BODY" --bearer-env BENCH_PEER_TOKEN \
        --expect-status 200 --expect-body '"chat.completion"' --tag path=via --label "litellm via ${ms}ms" \
        --json-out "$OUT/litellm-${ms}ms-via-$rate.json" || true
    done
    if [[ "$ms" == "$SEARCH_LATENCY" ]]; then
      "$BIN/loadgen" search --method POST --max-in-flight "$MAX_IN_FLIGHT" --threads 1 --warmup "$WARMUP" \
        --tag store=litellm --tag "mock_ms=$ms" --tag path=via --start-rate 50 --max-rate "$SEARCH_MAX" \
        --max-steps "$SEARCH_STEPS" --step-duration "$SEARCH_STEP_S" --p99-bound-ms "$SEARCH_P99_MS" \
        --timeout-ms 5000 --label "litellm via search" --json-out "$OUT/litellm-search-via.json" \
        --url "$url" --body "$DIRECT_BODY" --bearer-env BENCH_PEER_TOKEN --expect-status 200 \
        --expect-body '"chat.completion"'
    fi
  done
  set_mock_latency 0
  cp "$WORK/litellm.log" "$OUT/litellm.log"
  # setsid made the proxy a process group leader: stop its workers with it.
  kill -TERM -- "-$lpid" 2>/dev/null || true
  stop_pid "$lpid"
}

for peer in $PEERS; do
  case "$peer" in
    litellm) peer_litellm ;;
    *) die "unknown peer $peer (litellm)" ;;
  esac
done

# ---------------------------------------------------------------- scale (full mode)
# Postgres only, two parts.
# 1. Store level: formaops-store's own scale bench (`cargo bench -p formaops-store --bench
#    scale`: bulk-loads or reuses database formaops_bench_<rows>, times list_executions and
#    metrics through the Store trait). Its figures are parsed into the report.
# 2. Through the REST API: a database holding BENCH_SCALE_ROWS executions -- a copy of the store
#    bench's database when it can be taken (CREATE DATABASE ... TEMPLATE, seconds), otherwise
#    loaded here with INSERT ... SELECT generate_series within BENCH_SCALE_MAX_LOAD_S seconds
#    (the row count reached is reported) -- then, with the generator: listing newest first
#    (first page and a keyset page half way through the history), metrics for the user with
#    1M executions, and the execute path at 1,000/s plus a short search, to compare with the
#    empty database measured earlier in the same run.
store_scale_bench() { # rows
  log "scale: cargo bench -p formaops-store --bench scale (FORMAOPS_BENCH_ROWS=$1)"
  if ! FORMAOPS_BENCH_ROWS="$1" timeout "${BENCH_STORE_SCALE_TIMEOUT:-1800}" cargo bench -q -p formaops-store --bench scale \
      >"$OUT/store-scale.txt" 2>"$OUT/store-scale.err"; then
    log "scale: the store's scale bench failed (see $OUT/store-scale.err); its figures are missing"
    tail -n 5 "$OUT/store-scale.err" >&2 || true
    return 0
  fi
  cat "$OUT/store-scale.txt" >&2
  # Lines like: "list first page (50)   n=200  p50=   0.412 ms  p99=   0.901 ms  max=   1.2 ms"
  python3 - "$OUT/store-scale.txt" "$1" >"$OUT/store-scale.json" <<'PY'
import json, re, sys
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"(.+?)\s+n=(\d+)\s+p50=\s*([\d.]+) ms\s+p99=\s*([\d.]+) ms\s+max=\s*([\d.]+) ms", line)
    if not m:
        continue
    name, n, p50, p99, mx = m.group(1).strip(), int(m.group(2)), float(m.group(3)), float(m.group(4)), float(m.group(5))
    is_metrics = name.startswith("metrics")
    bound = 50.0 if is_metrics else 10.0
    rows.append({"name": f"store level: {name}, {sys.argv[2]} rows, p99 (n={n})", "value": p99, "unit": "ms",
                 "target": f"<= {bound:.0f} ms", "met": p99 <= bound,
                 "note": f"p50 {p50} ms, max {mx} ms; formaops-store bench, Store trait, no HTTP"})
print(json.dumps({"kind": "scale", "rows": rows}))
PY
}

scale_step() {
  local rows="${BENCH_SCALE_ROWS:-10000000}" max_load_s="${BENCH_SCALE_MAX_LOAD_S:-600}"
  local db url uid source="generated here" t0 load_s total user_rows deep_cursor
  [[ "$rows" =~ ^[0-9]+$ && "$rows" -ge 1000 && "$rows" -le 100000000 ]] || die "BENCH_SCALE_ROWS must be 1000..100000000"
  [[ "$max_load_s" =~ ^[0-9]+$ ]] || die "BENCH_SCALE_MAX_LOAD_S must be a number of seconds"
  pg_isready -q -d "$DATABASE_URL" 2>/dev/null || die "no PostgreSQL answers at DATABASE_URL=$DATABASE_URL"
  db="formaops_bench_scale_$$_$RANDOM"
  t0=$(date +%s)
  local template="formaops_bench_$rows"
  if psql -q "$DATABASE_URL" -c "CREATE DATABASE \"$db\" TEMPLATE \"$template\" STRATEGY FILE_COPY" >/dev/null 2>&1; then
    source="copy of $template (formaops-store's scale bench data)"
    PG_DBS+=("$db")
  else
    psql -q "$DATABASE_URL" -c "CREATE DATABASE \"$db\"" >/dev/null
    PG_DBS+=("$db")
  fi
  url=$(db_url "$DATABASE_URL" "$db")
  if [[ "$source" != "generated here" ]]; then
    # The copied rows belong to synthetic users ...0001..; 1 % of them are QUEUED for provider
    # `mock`. Cancel those (the server must not spend the measurement executing them).
    psql -q -X "$url" -c "UPDATE executions SET status = 'CANCELLED' WHERE status IN ('QUEUED', 'RUNNING')" >/dev/null
  fi
  start_server scale "$url"
  if [[ "$source" != "generated here" ]]; then
    # Make the bench account the synthetic user 1 (1M of the 10M rows) before logging in.
    psql -q -X "$url" -c "UPDATE users SET id = '00000000-0000-0000-0000-000000000001' WHERE email = '$ADMIN_EMAIL'" >/dev/null
  fi
  setup_prompt
  uid=$(psql -XAtq "$url" -c "SELECT user_id FROM prompts WHERE id = '$PROMPT_ID'")
  [[ -n "$uid" ]] || die "scale: cannot find the bench user"
  if [[ "$source" == "generated here" ]]; then
    local batches=20 batch lo hi
    log "scale: loading up to $rows executions ($((rows / 10)) for the bench user), at most ${max_load_s}s"
    for batch in $(seq 0 $((batches - 1))); do
      if (( $(date +%s) - t0 > max_load_s )); then
        log "scale: load time budget (${max_load_s}s) used up after $batch/$batches batches"; break
      fi
      lo=$((batch * rows / batches + 1)); hi=$(((batch + 1) * rows / batches))
      timeout 1200 psql -q -v ON_ERROR_STOP=1 -X "$url" <<SQL || die "scale: loading batch $batch failed"
SET statement_timeout = '20min';
INSERT INTO executions (id, user_id, prompt_id, prompt_version, inputs, priority, status, validate_output,
    provider, model, output, validation_passed, latency_ms, provider_latency_ms, queue_ms,
    tokens_input, tokens_output, tokens_total, tokens_estimated, cost_usd, attempts, max_attempts,
    created_at, run_after, deadline_at, started_at, finished_at, queue_key)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       CASE WHEN g % 10 = 0 THEN '$uid'::uuid
            ELSE ('10000000-0000-4000-8000-' || lpad(to_hex(g % 10), 12, '0'))::uuid END,
       '$PROMPT_ID'::uuid, 1, '{"review": "bulk-loaded"}'::jsonb, 'NORMAL',
       CASE WHEN g % 50 = 0 THEN 'FAILED' ELSE 'COMPLETED' END, true, 'openai', 'gpt-4o-mini',
       '{"sentiment":"positive","confidence":0.93}', g % 50 <> 0,
       5 + g % 400, 4 + g % 390, g % 7, 42, 24, 66, false, 0.0000207, 1, 3,
       ts, ts, ts + interval '5 minutes', ts, ts + (5 + g % 400) * interval '1 millisecond', g
FROM (SELECT g, now() - interval '1 hour' - g * interval '10 milliseconds' AS ts
      FROM generate_series($lo, $hi) AS g) AS s;
SQL
      log "scale: batch $((batch + 1))/$batches loaded (rows $lo..$hi)"
    done
  fi
  psql -q -X "$url" -c "ANALYZE executions" >/dev/null
  load_s=$(( $(date +%s) - t0 ))
  total=$(psql -XAtq "$url" -c "SELECT count(*) FROM executions")
  user_rows=$(psql -XAtq "$url" -c "SELECT count(*) FROM executions WHERE user_id = '$uid'")
  log "scale: $total rows ($user_rows for the bench user), $source, ready in ${load_s}s"
  # A keyset cursor half way through the bench user's history ({created_at micros}_{uuid simple}).
  deep_cursor=$(psql -XAtq "$url" -c "SELECT (extract(epoch FROM created_at) * 1000000)::bigint::text || '_' || replace(id::text, '-', '')
      FROM executions WHERE user_id = '$uid' ORDER BY created_at DESC, id DESC OFFSET $((user_rows / 2)) LIMIT 1")
  local get=(--method GET --max-in-flight 64 --threads 1 --warmup 1 --bearer-env BENCH_TOKEN --expect-status 200
             --server-pid "$SERVER_PID" --tag store=postgres-scale)
  "$BIN/loadgen" run "${get[@]}" --url "$API/api/executions?limit=50" --expect-body '"items"' \
    --tag path=scale-list-first --label "list first page at $total rows" --rate 20 --duration 10 \
    --json-out "$OUT/scale-list-first.json"
  "$BIN/loadgen" run "${get[@]}" --url "$API/api/executions?limit=50&cursor=$deep_cursor" --expect-body '"items"' \
    --tag path=scale-list-deep --label "list deep page at $total rows" --rate 20 --duration 10 \
    --json-out "$OUT/scale-list-deep.json"
  "$BIN/loadgen" run "${get[@]}" --url "$API/api/metrics" \
    --tag path=scale-metrics --label "metrics, user with $user_rows executions" --rate 5 --duration 10 \
    --timeout-ms 30000 --json-out "$OUT/scale-metrics.json"
  "$BIN/loadgen" run --method POST --max-in-flight "$MAX_IN_FLIGHT" --warmup "$WARMUP" --threads 1 \
    --url "$API/api/prompts/$PROMPT_ID/execute" --body "$EXEC_BODY" --bearer-env BENCH_TOKEN \
    --expect-status 200 --expect-body "$EXPECT_VIA" --server-pid "$SERVER_PID" \
    --tag store=postgres-scale --tag path=scale-execute --label "execute at 1000/s on $total rows" \
    --rate 1000 --duration "$DURATION" --json-out "$OUT/scale-execute-1000.json"
  SEARCH_STEPS=5 run_search postgres-scale via
  cp "$WORK/server-scale.log" "$OUT/server-scale.log"
  stop_pid "$SERVER_PID"
  psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true

  # Summary rows for the report.
  local fresh="$OUT/postgres-0ms-via-1000.json" fresh_search="$OUT/postgres-search-via.json"
  jq -n --slurpfile first "$OUT/scale-list-first.json" --slurpfile deep "$OUT/scale-list-deep.json" \
    --slurpfile metrics "$OUT/scale-metrics.json" --slurpfile exec "$OUT/scale-execute-1000.json" \
    --slurpfile search "$OUT/postgres-scale-search-via.json" \
    --argjson fresh "$( [[ -f $fresh ]] && cat "$fresh" || echo null)" \
    --argjson fresh_search "$( [[ -f $fresh_search ]] && cat "$fresh_search" || echo null)" \
    --arg total "$total" --arg user_rows "$user_rows" --arg load_s "$load_s" --arg source "$source" '
    def ms(x): (x / 1000 * 100 | round) / 100;
    {kind: "scale", rows: [
      {name: "REST: database with \($total) executions ready", value: ($load_s | tonumber), unit: "s", note: $source},
      {name: "REST: GET /api/executions first page of 50, user with \($user_rows) of \($total) rows, p99 (n=\($first[0].latency.count))",
       value: ms($first[0].latency.p99_us), unit: "ms", target: "<= 10 ms", met: ($first[0].latency.p99_us <= 10000 and $first[0].errors.total == 0),
       note: "p50 \(ms($first[0].latency.p50_us)) ms, errors \($first[0].errors.total)"},
      {name: "REST: GET /api/executions keyset page half way through the history, p99 (n=\($deep[0].latency.count))",
       value: ms($deep[0].latency.p99_us), unit: "ms", target: "<= 10 ms", met: ($deep[0].latency.p99_us <= 10000 and $deep[0].errors.total == 0),
       note: "p50 \(ms($deep[0].latency.p50_us)) ms, errors \($deep[0].errors.total)"},
      {name: "REST: GET /api/metrics, user with \($user_rows) executions, p99 (n=\($metrics[0].latency.count))",
       value: ms($metrics[0].latency.p99_us), unit: "ms", target: "<= 50 ms", met: ($metrics[0].latency.p99_us <= 50000 and $metrics[0].errors.total == 0),
       note: "p50 \(ms($metrics[0].latency.p50_us)) ms, max \(ms($metrics[0].latency.max_us)) ms, errors \($metrics[0].errors.total)"},
      {name: "REST: execute at 1,000/s with \($total) rows in the table (mock 0 ms), p99", value: ms($exec[0].latency.p99_us), unit: "ms",
       note: "p50 \(ms($exec[0].latency.p50_us)) ms, errors \($exec[0].errors.total); empty database, same run: \(if $fresh then "p50 \(ms($fresh.latency.p50_us)) ms, p99 \(ms($fresh.latency.p99_us)) ms" else "not measured" end)"},
      {name: "REST: highest sustainable execute rate with \($total) rows in the table", value: ($search[0].best_rate // 0), unit: "/s",
       note: "empty database, same run: \(if $fresh_search then "\($fresh_search.best_rate // 0)/s" else "not measured" end); pass = 0 errors, p99 <= \($search[0].criteria.p99_bound_us / 1000) ms"}
    ]}' >"$OUT/scale.json"
  store_scale_bench "$rows"
}

if [[ "$MODE" == full && "${BENCH_SCALE:-1}" == "1" ]]; then
  scale_step
fi

# ---------------------------------------------------------------- report
jq -n --arg mode "$MODE" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --arg cpus "$(nproc) x $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)" \
  --arg memory "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)" \
  --arg kernel "$(uname -r)" --arg command "scripts/bench.sh $MODE" \
  --arg stores "$STORES" --arg duration "${DURATION}s per fixed-rate run (+${WARMUP}s warmup)" \
  --arg search "start ${SEARCH_START_VIA}/s (via) ${SEARCH_START_DIRECT}/s (direct), max ${SEARCH_MAX}/s, ${SEARCH_STEPS} steps x ${SEARCH_STEP_S}s, pass = 0 errors, 0 drops, p99 <= ${SEARCH_P99_MS} ms" \
  '{mode:$mode, date:$date, commit:$commit, cpus:$cpus, memory:$memory, kernel:$kernel, command:$command, stores:$stores, runs:$duration, search:$search}' \
  >"$OUT/meta.json"
log "results in $OUT"
"$BIN/loadgen" report --dir "$OUT" --check
