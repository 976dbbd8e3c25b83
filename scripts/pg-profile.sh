#!/usr/bin/env bash
# What one execution costs Postgres (issue 18): commits, statements, WAL and buffers per
# execution, the top statements, and the plans of the hot statements as the table grows.
#
#   scripts/pg-profile.sh                                  # rates 100 and 1000/s, 10 s each
#   PROFILE_RATES="100" PROFILE_DURATION=5 scripts/pg-profile.sh
#
# 1. Starts a throwaway PostgreSQL cluster (scripts/lib/pg.sh: initdb + pg_ctl as the `postgres`
#    user when run as root, data in a mktemp -d directory, listening on 127.0.0.1 only) on port
#    BENCH_PG_PORT (default 5433) with `shared_preload_libraries = 'pg_stat_statements'` and
#    `pg_stat_statements.track = all`, otherwise default settings (pg.sh adds
#    max_connections = 200), and creates the extension and the database `formaops_profile`.
# 2. Builds release `formaops`, `mock-openai` and `loadgen` (PROFILE_SKIP_BUILD=1 reuses
#    target/release), starts the mock and `formaops serve` (strict durability) on loopback with
#    the mock as its OpenAI-compatible provider, logs in and creates bench's prompt, exactly as
#    scripts/bench.sh does (the shared code is scripts/lib/bench-common.sh).
# 3. For each rate in PROFILE_RATES, for PROFILE_DURATION seconds (no warmup), drives
#    `POST /api/prompts/{id}/execute` with bench's open-loop generator. Before: reset
#    pg_stat_statements, read pg_stat_database (the profile database) and pg_stat_wal (the whole
#    cluster, in which nothing else runs); after (2 s later, backends flush statistics at most
#    once a second): the same. Divides by the executions stored meanwhile (count(*) delta).
#    Everything the server did in that window counts, background work included.
# 4. Plans: `EXPLAIN (ANALYZE, BUFFERS)` of the hot statements -- the lookup by id and user, the
#    claim, the finish update and the enqueue insert -- once before the first run (a couple of
#    rows) and after each run, as generic plans (`plan_cache_mode = force_generic_plan`: what a
#    connection that prepared the statement reuses), writes rolled back. The statement texts are
#    read from formaops-store's source constants (GET_EXECUTION, CLAIM_PG, FINISH_EXECUTIONS,
#    INSERT_EXECUTIONS), and the report says how often the server ran each exact text.
# 5. Writes bench-results/<timestamp>-pg-profile/profile.md (plus the raw JSON) and prints it.
#
# The figures are counts (commits, statements, WAL, pages), not timings: a shared, loaded
# machine changes the "mean ms" column, not the counts.
#
# Environment (all optional): PROFILE_RATES (default "100 1000"), PROFILE_DURATION (seconds,
# default 10), BENCH_PG_PORT (default 5433; must be free), PG_BIN (PostgreSQL server binaries,
# default /usr/lib/postgresql/15/bin when present), PROFILE_SKIP_BUILD=1,
# BENCH_PROVIDER_CONCURRENCY (default 256).
#
# Loopback only; bounded time (each load run is PROFILE_DURATION seconds with a 10 s request
# timeout, every SQL statement here has a 60 s statement timeout); every process started here,
# and the cluster, is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

RATES="${PROFILE_RATES:-100 1000}"
DURATION="${PROFILE_DURATION:-10}"
PG_PORT="${BENCH_PG_PORT:-5433}"
PROVIDER_CONCURRENCY="${BENCH_PROVIDER_CONCURRENCY:-256}"
OPENAI_RATES="" # setup_prompt: REST execute only
MAX_IN_FLIGHT=512
PROFILE_DB=formaops_profile
BENCH_LOG_TAG=pg-profile

[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 && "$DURATION" -le 600 ]] || { echo "PROFILE_DURATION must be 1..600 seconds" >&2; exit 2; }
[[ "$PG_PORT" =~ ^[0-9]+$ && "$PG_PORT" -ge 1024 && "$PG_PORT" -le 65535 ]] || { echo "BENCH_PG_PORT must be a port number 1024..65535" >&2; exit 2; }
for rate in $RATES; do
  [[ "$rate" =~ ^[0-9]+$ && "$rate" -ge 1 && "$rate" -le 20000 ]] || { echo "PROFILE_RATES: each rate must be 1..20000 per second" >&2; exit 2; }
done
[[ -n "${RATES// /}" ]] || { echo "PROFILE_RATES is empty" >&2; exit 2; }

RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)-pg-profile"
OUT="$ROOT/bench-results/$RUN_ID"
mkdir -p "$OUT"
WORK="$(mktemp -d /tmp/formaops-pg-profile.XXXXXX)"
PGDIR="$(mktemp -d /tmp/formaops-pg-profile-cluster.XXXXXX)"
PIDS=()

# shellcheck source=scripts/lib/bench-common.sh
source "$ROOT/scripts/lib/bench-common.sh"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

cleanup() {
  local status=$?
  stop_started
  pg_cluster_remove "$PGDIR" || true
  rmdir "$PGDIR" 2>/dev/null || true # still empty: the cluster never started
  rmdir "$OUT" 2>/dev/null || true   # nothing measured
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

preflight
[[ $(id -u) != 0 ]] || command -v runuser >/dev/null || die "runuser is required when running as root"

# ---------------------------------------------------------------- build
if [[ "${PROFILE_SKIP_BUILD:-0}" != "1" ]]; then
  log "building release binaries (formaops, mock-openai, loadgen)"
  cargo build --release -q -p formaops-http --bin formaops -p formaops-bench --bins
fi
BIN="$ROOT/target/release"
for b in formaops mock-openai loadgen; do [[ -x "$BIN/$b" ]] || die "missing $BIN/$b"; done

# ---------------------------------------------------------------- cluster
if [[ -z "${PG_BIN:-}" && -x /usr/lib/postgresql/15/bin/initdb ]]; then
  export PG_BIN=/usr/lib/postgresql/15/bin
fi
if pg_answers "postgres://postgres@127.0.0.1:$PG_PORT/postgres" ||
   python3 -c 'import socket, sys; s = socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$PG_PORT"; then
  die "port $PG_PORT is in use; set BENCH_PG_PORT to a free port"
fi
PG_CLUSTER_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all" \
  pg_cluster_start "$PGDIR" "$PG_PORT" || die "could not start the throwaway cluster (log: $PGDIR/postgres.log)"
ADMIN_URL="$PG_CLUSTER_URL"
DB_URL=$(db_url "$ADMIN_URL" "$PROFILE_DB")
export PGOPTIONS="-c statement_timeout=60s"
sql() { psql -XAtq -v ON_ERROR_STOP=1 "$ADMIN_URL" -c "$1"; }
db_sql() { psql -XAtq -v ON_ERROR_STOP=1 "$DB_URL" -c "$1"; }
sql "CREATE EXTENSION pg_stat_statements"
sql "CREATE DATABASE $PROFILE_DB"
PG_VERSION_TEXT=$(sql "SHOW server_version")
log "PostgreSQL $PG_VERSION_TEXT at $ADMIN_URL (data in $PGDIR, pg_stat_statements preloaded, track = all)"

# ---------------------------------------------------------------- server
start_mock
start_server postgres "$DB_URL"
setup_prompt

# ---------------------------------------------------------------- hot statements
# The texts the server sends, from formaops-store's source (one copy), as JSON {name: sql}.
python3 - "$ROOT/formaops-store/src" >"$WORK/statements.json" <<'PY'
import json, pathlib, re, sys
src = "".join(p.read_text() for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.rs")))
wanted = {"lookup": "GET_EXECUTION", "claim": "CLAIM_PG", "finish": "FINISH_EXECUTIONS", "insert": "INSERT_EXECUTIONS"}
out = {}
for name, const in wanted.items():
    m = re.search(r"const " + const + r': &str =\s*"((?:[^"\\]|\\.)*)"', src, re.S)
    if m:
        out[name] = re.sub(r"\\\n\s*", "", m.group(1)).replace('\\"', '"')
print(json.dumps(out))
PY
for name in lookup claim finish insert; do
  jq -e --arg n "$name" 'has($n)' "$WORK/statements.json" >/dev/null || die "cannot find the $name statement in formaops-store/src"
done

# Arguments for each statement (psql variables: eid, uid, pid, provider = the newest execution).
declare -A ARGS=(
  [lookup]=":'eid'::uuid, :'uid'::uuid"
  [claim]="'pg-profile', now() + interval '1 minute', now(), :'provider', 2"
  [finish]="ARRAY[:'eid'::uuid], ARRAY[:'uid'::uuid], ARRAY['pg-profile'], ARRAY['COMPLETED'], ARRAY['{}'], ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[true], ARRAY[NULL]::text[], ARRAY[5]::int8[], ARRAY[4]::int8[], ARRAY[0]::int8[], ARRAY[42]::int8[], ARRAY[24]::int8[], ARRAY[0]::int8[], ARRAY[0]::int8[], ARRAY[66]::int8[], ARRAY[false], ARRAY[0.00002]::numeric[], ARRAY[NULL]::timestamptz[], ARRAY[now()], ARRAY['stop']"
  [insert]="ARRAY[gen_random_uuid()], ARRAY[:'uid'::uuid], ARRAY[:'pid'::uuid], ARRAY[1]::int8[], ARRAY['{}'], ARRAY['NORMAL'], ARRAY['RUNNING'], ARRAY[true], ARRAY[:'provider'], ARRAY['gpt-4o-mini'], ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::text[], ARRAY[NULL]::bool[], ARRAY[NULL]::text[], ARRAY[NULL]::int8[], ARRAY[NULL]::int8[], ARRAY[NULL]::int8[], ARRAY[NULL]::int8[], ARRAY[NULL]::int8[], ARRAY[NULL]::int8[], ARRAY[NULL]::int8[], ARRAY[NULL]::int8[], ARRAY[NULL]::bool[], ARRAY[NULL]::numeric[], ARRAY[1]::int8[], ARRAY[3]::int8[], ARRAY[NULL]::uuid[], ARRAY[NULL]::text[], ARRAY[now()], ARRAY[now()], ARRAY[now() + interval '5 minutes'], ARRAY[now()], ARRAY[NULL]::timestamptz[], ARRAY[0]::int8[], ARRAY['pg-profile'], ARRAY[now() + interval '1 minute'], ARRAY[NULL]::text[]"
)

# Run first in the same (rolled back) transaction, so that the claim and the finish find a row
# to change, as they do in the server: the newest execution made QUEUED / RUNNING under our lease.
declare -A PRE=(
  [lookup]=""
  [claim]="UPDATE executions SET status = 'QUEUED', run_after = now() - interval '1 second', lease_owner = NULL WHERE id = :'eid';"
  [finish]="UPDATE executions SET status = 'RUNNING', lease_owner = 'pg-profile' WHERE id = :'eid';"
  [insert]=""
)

explain() { # stage -> $OUT/plans-<stage>.json: [{name, rows, plan (JSON), text}]
  local stage="$1" name row eid uid pid provider rows text format
  row=$(db_sql "SELECT id, user_id, prompt_id, provider FROM executions ORDER BY created_at DESC, id DESC LIMIT 1")
  [[ -n "$row" ]] || die "no execution stored: cannot explain the hot statements"
  IFS='|' read -r eid uid pid provider <<<"$row"
  rows=$(db_sql "SELECT count(*) FROM executions")
  echo '[]' >"$WORK/plans.json"
  for name in lookup claim finish insert; do
    text=$(jq -r --arg n "$name" '.[$n]' "$WORK/statements.json")
    for format in json text; do
      psql -XAtq -v ON_ERROR_STOP=1 -v eid="$eid" -v uid="$uid" -v pid="$pid" -v provider="$provider" \
        "$DB_URL" >"$WORK/explain.$format" <<SQL || die "EXPLAIN of $name failed"
PREPARE hot AS $text;
BEGIN;
${PRE[$name]}
SET LOCAL plan_cache_mode = force_generic_plan;
EXPLAIN (ANALYZE, BUFFERS, FORMAT $format) EXECUTE hot(${ARGS[$name]});
ROLLBACK;
SQL
    done
    jq --arg n "$name" --arg rows "$rows" --rawfile text "$WORK/explain.text" --slurpfile plan "$WORK/explain.json" \
      '. + [{name: $n, rows: ($rows | tonumber), plan: $plan[0][0], text: $text}]' "$WORK/plans.json" >"$WORK/plans.next"
    mv "$WORK/plans.next" "$WORK/plans.json"
  done
  mv "$WORK/plans.json" "$OUT/plans-$stage.json"
  log "plans at $rows rows written ($stage)"
}

snapshot() { # -> one JSON object: the profile database's counters and the cluster's WAL counters
  sql "SELECT row_to_json(s) FROM (SELECT d.xact_commit, d.xact_rollback, d.blks_hit, d.blks_read, d.sessions,
         w.wal_records, w.wal_fpi, w.wal_bytes::int8 AS wal_bytes, w.wal_write, w.wal_sync
       FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = '$PROFILE_DB') s"
}

statements() { # -> JSON array of the profile database's pg_stat_statements rows
  sql "SELECT coalesce(json_agg(s ORDER BY s.total_exec_time DESC), '[]') FROM (
         SELECT p.toplevel, p.calls, p.total_exec_time, p.mean_exec_time, p.rows, p.shared_blks_hit,
                p.shared_blks_read, p.shared_blks_dirtied, p.shared_blks_written, p.wal_records,
                p.wal_bytes::int8 AS wal_bytes, p.query
         FROM pg_stat_statements p JOIN pg_database d ON d.oid = p.dbid WHERE d.datname = '$PROFILE_DB') s"
}

explain start

# ---------------------------------------------------------------- runs
for rate in $RATES; do
  count_before=$(db_sql "SELECT count(*) FROM executions")
  sql "SELECT pg_stat_statements_reset()" >/dev/null
  sleep 1.5 # let the reset's and the count's statistics settle before the first reading
  before=$(snapshot)
  "$BIN/loadgen" run --method POST --max-in-flight "$MAX_IN_FLIGHT" --warmup 0 --threads 1 \
    --url "$API/api/prompts/$PROMPT_ID/execute" --body "$EXEC_BODY" --bearer-env BENCH_TOKEN \
    --expect-status 200 --expect-body "$EXPECT_VIA" --server-pid "$SERVER_PID" \
    --tag store=postgres --tag path=via --tag profile=pg --label "pg-profile execute $rate/s" \
    --rate "$rate" --duration "$DURATION" --json-out "$OUT/load-$rate.json" &
  load_pid=$!; PIDS+=("$load_pid")
  wait "$load_pid" || die "the load generator failed at $rate/s" # (in the background: a signal stops the run at once)
  sleep 2 # backends flush their statistics at most once a second
  after=$(snapshot)
  statements >"$OUT/statements-$rate.json"
  count_after=$(db_sql "SELECT count(*) FROM executions")
  jq -n --argjson before "$before" --argjson after "$after" --arg rate "$rate" \
    --arg executions "$((count_after - count_before))" --slurpfile load "$OUT/load-$rate.json" \
    '{rate: ($rate | tonumber), executions: ($executions | tonumber), before: $before, after: $after,
      load: {sent: $load[0].sent, ok: $load[0].ok, errors: $load[0].errors.total, dropped: $load[0].dropped}}' \
    >"$OUT/counters-$rate.json"
  log "rate $rate/s: $((count_after - count_before)) executions stored"
  explain "after-$rate"
done

cp "$WORK/server-postgres.log" "$OUT/server.log"
cp "$PGDIR/postgres.log" "$OUT/postgres.log" 2>/dev/null || true
cp "$WORK/statements.json" "$OUT/statements.json"

# ---------------------------------------------------------------- report
python3 - "$OUT" "$RATES" "$DURATION" "$PG_VERSION_TEXT" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(nproc) x $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/profile.md" <<'PY'
import datetime, json, pathlib, re, sys
out, rates, duration, pg_version, commit, cpus, load = sys.argv[1:8]
out = pathlib.Path(out)
rates = rates.split()
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

def f(x, digits=2):
    return f"{x:,.{digits}f}"

lines = [
    "# Postgres profile per execution (pg_stat_statements)", "",
    f"- date: {now}; commit: `{commit}`; PostgreSQL {pg_version} (throwaway cluster, "
    "`pg_stat_statements` preloaded, `track = all`, default settings, `synchronous_commit = on`)",
    f"- command: `PROFILE_RATES=\"{' '.join(rates)}\" PROFILE_DURATION={duration} scripts/pg-profile.sh`",
    f"- machine: {cpus}; load average at the end {load} (shared with other builds)",
    "- load: `POST /api/prompts/{id}/execute` (synchronous, output validated), open loop at the rate, "
    f"{duration} s per rate, no warmup; mock provider at 0 ms; `formaops serve --durability strict`",
    "- **These are counts, not timings.** Commits, statements, WAL and pages per execution do not depend "
    "on how busy the machine is; the `mean ms` column does.",
    "- Per execution = counter delta over the run / executions stored in the run (`count(*)` delta). "
    "Everything the server did meanwhile counts, background work included. WAL counters are the "
    "cluster's (nothing else runs in it). `commits` = `pg_stat_database.xact_commit`: every transaction "
    "that committed, explicit ones and each statement sent outside one.", "",
    "## Per execution", "",
    "| rate /s | executions (ok / sent, errors) | commits | rollbacks | statements (top level) | of which BEGIN/COMMIT/ROLLBACK | statements incl. nested | WAL records | WAL bytes | WAL full-page images | WAL writes | WAL syncs | buffers hit + read | connections opened in the run |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
per_rate = {}
for rate in rates:
    c = json.loads((out / f"counters-{rate}.json").read_text())
    st = json.loads((out / f"statements-{rate}.json").read_text())
    n = max(c["executions"], 1)
    d = {k: c["after"][k] - c["before"][k] for k in c["before"]}
    top = [s for s in st if s["toplevel"]]
    tx = sum(s["calls"] for s in top if s["query"].strip().upper() in ("BEGIN", "COMMIT", "ROLLBACK"))
    per_rate[rate] = (c, st, n)
    load = c["load"]
    lines.append(
        f"| {rate} | {c['executions']:,} ({load['ok']:,} / {load['sent']:,}, {load['errors']}) "
        f"| {f(d['xact_commit'] / n)} | {f(d['xact_rollback'] / n)} "
        f"| {f(sum(s['calls'] for s in top) / n)} | {f(tx / n)} | {f(sum(s['calls'] for s in st) / n)} "
        f"| {f(d['wal_records'] / n)} | {f(d['wal_bytes'] / n, 0)} | {f(d['wal_fpi'] / n)} "
        f"| {f(d['wal_write'] / n)} | {f(d['wal_sync'] / n)} | {f((d['blks_hit'] + d['blks_read']) / n, 1)} | {d['sessions']:,} |")
lines.append("")

for rate in rates:
    c, st, n = per_rate[rate]
    total_ms = sum(s["total_exec_time"] for s in st)
    lines += [f"## Top statements at {rate}/s, by total time ({c['executions']:,} executions)", "",
              "| calls / execution | mean ms | rows / call | shared blks hit+read / call | WAL bytes / call | % of time | level | query (first 90 chars) |",
              "|---:|---:|---:|---:|---:|---:|---|---|"]
    for s in st[:15]:
        q = " ".join(s["query"].split())[:90].replace("|", "\\|")
        calls = max(s["calls"], 1)
        lines.append(
            f"| {f(s['calls'] / n, 3)} | {f(s['mean_exec_time'], 3)} | {f(s['rows'] / calls)} "
            f"| {f((s['shared_blks_hit'] + s['shared_blks_read']) / calls, 1)} | {f(s['wal_bytes'] / calls, 0)} "
            f"| {f(100 * s['total_exec_time'] / total_ms if total_ms else 0, 1)} "
            f"| {'top' if s['toplevel'] else 'nested'} | `{q}` |")
    lines.append(f"\n{len(st)} distinct statements in all.\n")

# Plans as the table grows.
stages = ["start"] + [f"after-{r}" for r in rates]
# pg_stat_statements shows constants as $n: compare texts with every parameter and constant as ?.
def canon(q):
    q = re.sub(r"'(?:[^']|'')*'|\$\d+|\b(?:NULL|true|false)\b|(?<![\w.])\d+(?:\.\d+)?\b", "?", q)
    return " ".join(q.split())

seen = {}
for rate in rates:
    for s in per_rate[rate][1]:
        seen.setdefault(canon(s["query"]), {})
        seen[canon(s["query"])][rate] = seen[canon(s["query"])].get(rate, 0) + s["calls"]

def outline(p):
    o = p["Node Type"]
    if "Index Name" in p:
        o += f" ({p['Index Name']})"
    kids = p.get("Plans") or []
    return o + (" > [" + ", ".join(outline(k) for k in kids) + "]" if kids else "")

def pages(p):
    return p.get("Shared Hit Blocks", 0) + p.get("Shared Read Blocks", 0)

lines += ["## Hot statement plans as the table grows", "",
          "Generic plans (`plan_cache_mode = force_generic_plan`, what a connection that prepared the "
          "statement reuses), `EXPLAIN (ANALYZE, BUFFERS)` of formaops-store's statement texts with "
          "the newest execution's id and user, writes rolled back. `calls in the run` = how often the "
          "server sent that text (constants aside) during each rate's run.", "",
          "| stage | rows in executions | statement | plan | pages (hit + read) | ms | calls in the run |",
          "|---|---:|---|---|---:|---:|---|"]
final = None
for stage in stages:
    plans = json.loads((out / f"plans-{stage}.json").read_text())
    final = plans
    for p in plans:
        plan = p["plan"]
        q = canon(json.loads((out / "statements.json").read_text())[p["name"]])
        calls = ", ".join(f"{r}/s: {seen.get(q, {}).get(r, 0):,}" for r in rates)
        lines.append(f"| {stage} | {p['rows']:,} | {p['name']} | {outline(plan['Plan'])} | {pages(plan['Plan'])} "
                     f"| {f(plan['Execution Time'], 3)} | {calls} |")
lines += ["", "### Plans after the last run", ""]
for p in final:
    lines += [f"**{p['name']}**", "", "```", p["text"].rstrip(), "```", ""]
print("\n".join(lines))
PY
log "profile in $OUT/profile.md"
cat "$OUT/profile.md"
