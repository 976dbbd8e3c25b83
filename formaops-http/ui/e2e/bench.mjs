// First useful paint of the console's main pages, in Chromium, against the real binary on a
// seeded SQLite database (PROMPTS prompts, EXECUTIONS completed executions), and the gzipped
// size of the JavaScript the console loads.
//
//   FORMAOPS_BIN=target/release/formaops PROMPTS=1000 EXECUTIONS=100000 node e2e/bench.mjs
//
// Prompts are created through the API; executions are one real execution copied in SQL
// (fresh ids, spread creation times, spread over the prompts), which is what a long-lived
// database holds. "Useful paint" = navigation start until the page's data is on screen:
// the first table row of the prompts and executions lists, the drawn status chart of the
// metrics page. Each page: one cold load (empty cache), then the median of RUNS warm loads.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { EMAIL, PASSWORD, startServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROMPTS = Number(process.env.PROMPTS ?? 1000);
const EXECUTIONS = Number(process.env.EXECUTIONS ?? 100000);
const RUNS = Number(process.env.RUNS ?? 7);
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

async function api(base, token, method, p, body) {
  const r = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function seedApi(base) {
  const login = await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: EMAIL, password: PASSWORD }) });
  const { token } = await login.json();
  const ids = [];
  for (let i = 0; i < PROMPTS; i += 16) {
    const batch = [];
    for (let j = i; j < Math.min(i + 16, PROMPTS); j++) {
      batch.push(
        api(base, token, 'POST', '/api/prompts', {
          name: `prompt-${String(j).padStart(4, '0')}`,
          description: `Seeded prompt ${j}`,
          template: 'Summarise {{ text }} in {{ words }} words.',
          variables: [
            { name: 'text', type: 'string', required: true },
            { name: 'words', type: 'integer', required: true },
          ],
        }),
      );
    }
    ids.push(...(await Promise.all(batch)).map((p) => p.id));
  }
  const first = ids[0];
  await api(base, token, 'POST', `/api/prompts/${first}/execute`, { inputs: { text: 'the seed', words: 5 } });
}

/** Copies the one real execution EXECUTIONS times, spread over the prompts and in time. */
function seedSql(db) {
  const cols = execFileSync('sqlite3', [db, "SELECT name FROM pragma_table_info('executions')"]).toString().trim().split('\n');
  const values = cols.map((c) => {
    if (c === 'id') return 'randomblob(16)';
    if (c === 'created_at') return 'e.created_at - n.i * 1000';
    if (c === 'prompt_id') return 'p.id';
    if (c === 'idempotency_key') return 'NULL';
    return `e.${c}`;
  });
  const sql = `
    PRAGMA journal_mode = WAL;
    CREATE TEMP TABLE p (k INTEGER PRIMARY KEY, id BLOB);
    INSERT INTO p SELECT ROW_NUMBER() OVER (ORDER BY created_at) - 1, id FROM prompts;
    CREATE TEMP TABLE e AS SELECT * FROM executions LIMIT 1;
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${EXECUTIONS - 1})
    INSERT INTO executions (${cols.join(', ')})
      SELECT ${values.join(', ')} FROM n, e JOIN p ON p.k = n.i % ${PROMPTS};
    -- The copies bypassed the finish path: clear the rollups and their backfill marker, so the
    -- restarted server's one-time backfill rolls up the whole history (as after an upgrade).
    DELETE FROM metric_latency; DELETE FROM metric_rollups; DELETE FROM metric_rollups_backfill;
    ANALYZE;`;
  execFileSync('sqlite3', [db], { input: sql });
  return execFileSync('sqlite3', [db, 'SELECT COUNT(*) FROM executions; SELECT COUNT(*) FROM prompts;']).toString().trim().split('\n');
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Navigation start until the first animation frame in which `selector` matches (the frame that
 * paints it). Checked in the page on every frame: Playwright's `locator.waitFor` polls with a
 * backoff (0, 20, 50, 100, 100, 500 ms, ...), so the metrics page, drawn by ~520 ms, was seen at ~870-900 ms.
 */
async function measure(page, url, selector) {
  await page.goto(url);
  const found = await page.waitForFunction((s) => document.querySelector(s) !== null && performance.now(), selector, {
    polling: 'raf',
    timeout: 60_000,
  });
  return found.jsonValue();
}

function bundleSize() {
  const dir = path.resolve(here, '..', 'dist', 'assets');
  const html = readFileSync(path.resolve(here, '..', 'dist', 'index.html'), 'utf8');
  let initial = 0;
  let all = 0;
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    const gz = gzipSync(readFileSync(path.join(dir, f)), { level: 9 }).length;
    all += gz;
    if (html.includes(f)) initial += gz;
  }
  return { initialKb: (initial / 1024).toFixed(1), allKb: (all / 1024).toFixed(1) };
}

async function main() {
  const workdir = mkdtempSync(path.join(tmpdir(), 'formaops-bench-'));
  const profile = mkdtempSync(path.join(tmpdir(), 'formaops-chromium-'));
  let server = await startServer(workdir);
  let context;
  try {
    const t0 = Date.now();
    await seedApi(server.base);
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    const counts = seedSql(path.join(workdir, 'console.db'));
    console.log(`seeded ${counts[1]} prompts, ${counts[0]} executions in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    server = await startServer(workdir);
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 860 },
    });
    const page = await context.newPage();
    await page.goto(`${server.base}/login`);
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Prompts' }).waitFor();
    const pages = [
      ['prompts list', '/prompts', '[data-testid="prompts-table"] tbody tr', '/api/prompts?status=ACTIVE&limit=100'],
      ['executions list', '/executions', '[data-testid="executions-table"] tbody tr', '/api/executions?limit=50'],
      ['metrics page', '/stats', '[data-testid="chart-status"][data-drawn="true"] canvas', '/api/metrics'],
    ];
    // The metrics page's second call (the charts' series, as the page asks for it by default).
    const seriesPath = '/api/metrics/series?bucket=hour';
    const rows = [];
    for (const [name, p, selector, apiPath] of pages) {
      // Cold: a fresh context-level cache is not available per page, so clear it explicitly.
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.clearBrowserCache');
      const cold = await measure(page, `${server.base}${p}`, selector);
      const warm = [];
      for (let i = 0; i < RUNS; i++) warm.push(await measure(page, `${server.base}${p}`, selector));
      // The page's main API call alone, from the page (same cookie), for where the time goes.
      const apiMs = [];
      for (let i = 0; i < 3; i++) {
        apiMs.push(await page.evaluate(async (u) => {
          const t = performance.now();
          await (await fetch(u)).text();
          return performance.now() - t;
        }, apiPath));
      }
      const row = { page: name, coldMs: Math.round(cold), warmMedianMs: Math.round(median(warm)), warmMaxMs: Math.round(Math.max(...warm)), apiMedianMs: Math.round(median(apiMs)) };
      if (p === '/stats') {
        const seriesMs = [];
        for (let i = 0; i < 3; i++) {
          seriesMs.push(await page.evaluate(async (u) => {
            const t = performance.now();
            await (await fetch(u)).text();
            return performance.now() - t;
          }, seriesPath));
        }
        row.seriesApiMedianMs = Math.round(median(seriesMs));
      }
      rows.push(row);
    }
    console.table(rows);
    console.log('gzipped JS (level 9):', bundleSize());
  } finally {
    if (context) await context.close();
    server.child.kill('SIGTERM');
    rmSync(profile, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
