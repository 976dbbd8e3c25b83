// The console's story in a real browser: Debian's Chromium driven by playwright-core against
// the real `formaops` binary on a fresh SQLite database with the zero-config mock provider.
//
//   FORMAOPS_BIN=path/to/formaops node e2e/console-flow.mjs
//
// A newcomer logs in, creates a prompt with three typed variables, runs it and watches the
// live status reach COMPLETED, edits it to v2 (first seeing a server-side problem next to the
// field it names), moves a label and diffs v1/v2, builds a dataset from past executions and
// runs an experiment v1 vs v2 to COMPLETED, reads the metrics charts, creates and revokes an
// API key, and logs out.
// A screenshot of each step goes to artifacts/ (gitignored). Any console error or CSP
// violation in the page fails the run.
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { check as checkApiTypes } from '../scripts/api-types.mjs';
import { EMAIL, PASSWORD, startServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(here, '..', 'artifacts');
const TIMEOUT = 15_000;

let step = 0;
async function shot(page, name) {
  step += 1;
  await page.screenshot({ path: path.join(ARTIFACTS, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
  console.log(`ok ${step} ${name}`);
}

/** Types into a CodeMirror editor found by its accessible name. */
async function typeInEditor(page, label, text, { replace = false } = {}) {
  const content = page.getByRole('textbox', { name: label, exact: true });
  await content.click();
  if (replace) await page.keyboard.press('Control+A');
  await page.keyboard.insertText(text);
}

async function checkHeaders(base) {
  const index = await fetch(`${base}/prompts/anything`);
  const csp = index.headers.get('content-security-policy') ?? '';
  if (index.status !== 200 || !csp.includes("script-src 'self'") || index.headers.get('cache-control') !== 'no-store') {
    throw new Error(`client route: ${index.status} csp=${csp} cache=${index.headers.get('cache-control')}`);
  }
  const html = await index.text();
  const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  if (!asset) throw new Error('index.html names no script asset');
  const js = await fetch(`${base}${asset}`);
  if (!js.headers.get('content-type')?.startsWith('text/javascript') || !js.headers.get('cache-control')?.includes('immutable')) {
    throw new Error(`asset headers: ${js.headers.get('content-type')} ${js.headers.get('cache-control')}`);
  }
  const api404 = await fetch(`${base}/api/nope`);
  if (api404.status !== 404 || !(api404.headers.get('content-type') ?? '').startsWith('application/json')) {
    throw new Error(`/api/nope must stay the API's JSON 404, got ${api404.status}`);
  }
  console.log('ok headers: CSP on the console, immutable assets, /api untouched');
}

async function main() {
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  const workdir = mkdtempSync(path.join(tmpdir(), 'formaops-console-'));
  const profile = mkdtempSync(path.join(tmpdir(), 'formaops-chromium-'));
  const server = await startServer(workdir);
  const problems = [];
  let context;
  try {
    // A fresh profile each run (Playwright passes it as --user-data-dir).
      context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 860 },
    });
    await checkHeaders(server.base);
    await checkApiTypes(`${server.base}/api/openapi.json`);
    console.log('ok api types: src/api/schema.d.ts matches the served OpenAPI document');
    context.setDefaultTimeout(TIMEOUT);
    const page = await context.newPage();
    page.on('console', (m) => {
      // The browser logs every 4xx answer; 401 (before logging in) and 422 (the problem this
      // story provokes on purpose) are expected. Anything else, CSP violations included, fails.
      const expected = /Failed to load resource: the server responded with a status of (401|422)\b/;
      if (m.type() === 'error' && !expected.test(m.text())) problems.push(`console: ${m.text()} at ${m.location().url}:${m.location().lineNumber}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('dialog', (d) => d.accept());
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));

    // 1. Log in.
    await page.goto(`${server.base}/`);
    await page.waitForURL(/\/login/);
    await shot(page, 'login');
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Prompts' }).waitFor();
    await page.getByTestId('user-menu').filter({ hasText: EMAIL }).waitFor();
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
    if (stored.includes('fos_') || stored.includes('formaops_session')) throw new Error(`a secret is readable by scripts: ${stored}`);

    // 2. Create a prompt with three typed variables.
    await page.getByTestId('new-prompt').click();
    await page.getByTestId('prompt-name-input').fill('story');
    await typeInEditor(page, 'Template', 'Write {{ words }} words about {{ topic }} in a {{ tone }} tone.');
    const vars = [
      ['topic', 'string', ''],
      ['words', 'integer', ''],
      ['tone', 'enum', 'dry, warm'],
    ];
    for (const [i, [name, type, values]] of vars.entries()) {
      await page.getByTestId('add-variable').click();
      await page.getByLabel(`Variable ${i + 1} name`).fill(name);
      await page.getByLabel(`Variable ${i + 1} type`).selectOption(type);
      if (values) await page.getByLabel(`Variable ${i + 1} enum values`).fill(values);
    }
    await shot(page, 'editor-new-prompt');
    await page.getByTestId('save-prompt').click();
    await page.getByTestId('prompt-name').filter({ hasText: 'story' }).waitFor();
    await page.getByTestId('shown-version').filter({ hasText: 'Version 1' }).waitFor();
    await shot(page, 'prompt-v1');

    // 3. Run it: the form has the three typed fields; the status goes live to COMPLETED.
    await page.getByTestId('run-prompt').click();
    await page.getByTestId('input-topic').fill('lighthouses');
    await page.getByTestId('input-words').fill('12');
    await page.getByTestId('input-tone').selectOption('warm');
    await page.getByTestId('run-submit').click();
    await page.getByTestId('execution-status').filter({ hasText: 'COMPLETED' }).waitFor();
    await page.getByTestId('execution-output').waitFor();
    await page.getByTestId('execution-metrics').filter({ hasText: 'Latency' }).waitFor();
    if (!sockets.some((u) => u.includes('/api/ws?executionId='))) throw new Error(`the run was not followed over the WebSocket: ${sockets}`);
    await shot(page, 'run-completed');

    // 4. Edit to v2: a server-side problem first shows next to the field it names.
    await page.goto(`${server.base}/prompts`);
    await page.getByRole('link', { name: 'story' }).click();
    await page.getByTestId('edit-prompt').click();
    await typeInEditor(page, 'Template', 'Write {{ words }} words about {{ topic }} for {{ reader }}.', { replace: true });
    await page.getByTestId('save-prompt').click();
    await page.getByTestId('problem-template').waitFor();
    await shot(page, 'editor-problem-next-to-field');
    await typeInEditor(page, 'Template', 'In a {{ tone }} tone, write {{ words }} words about {{ topic }}.', { replace: true });
    await page.getByTestId('save-prompt').click();
    await page.getByTestId('shown-version').filter({ hasText: 'Version 2 (current)' }).waitFor();
    await page.getByTestId('version-history').getByText('v1').waitFor();
    await shot(page, 'prompt-v2');

    // 4b. Labels and what changed: the edit left `production` on v1 (labels move only when
    // told); point it at v2 and see the move in the history; then compare v1 with v2.
    await page.getByTestId('label-production').filter({ hasText: 'v1' }).waitFor();
    await page.getByTestId('label-latest').filter({ hasText: 'v2' }).waitFor();
    await page.getByTestId('label-name').fill('production');
    await page.getByTestId('label-version').fill('2');
    await page.getByTestId('move-label').click();
    await page.getByTestId('label-production').filter({ hasText: 'v2' }).waitFor();
    await page.getByTestId('label-history-toggle').click();
    await page.getByTestId('label-history').filter({ hasText: 'v1 → v2' }).waitFor();
    await shot(page, 'labels');
    await page.getByTestId('diff-link-2').click();
    await page.getByTestId('diff-template').filter({ hasText: '+In a {{ tone }} tone' }).waitFor();
    await shot(page, 'diff');

    // 5. Executions list and one execution's page.
    await page.getByRole('link', { name: 'Executions', exact: true }).first().click();
    await page.getByTestId('executions-table').getByText('COMPLETED').first().waitFor();
    await shot(page, 'executions');
    await page.getByTestId('filter-status').selectOption('FAILED');
    await page.getByText('No executions match.').waitFor();
    await page.getByTestId('filter-status').selectOption('COMPLETED');
    await page.getByTestId('executions-table').locator('tbody tr a').first().click();
    await page.getByTestId('execution-inputs').filter({ hasText: 'lighthouses' }).waitFor();
    await page.getByTestId('execution-status').filter({ hasText: 'COMPLETED' }).waitFor();
    await page.getByTestId('execution-output').filter({ hasText: 'lighthouses' }).waitFor();
    await shot(page, 'execution-page');

    // 5b. An experiment: a dataset from the story prompt's completed executions, then v1 and v2
    // over it through the queue; the page follows its progress to COMPLETED and compares them.
    await page.getByRole('link', { name: 'Experiments', exact: true }).click();
    await page.getByRole('link', { name: 'Datasets', exact: true }).click();
    await page.getByTestId('from-prompt').selectOption({ label: 'story' });
    await page.getByTestId('from-name').fill('story traffic');
    await page.getByTestId('from-create').click();
    await page.getByTestId('dataset-created').filter({ hasText: 'with 1 rows' }).waitFor();
    await page.getByTestId('dataset-created').getByRole('link').click();
    await page.getByTestId('experiment-prompt').selectOption({ label: 'story' });
    await page.getByTestId('experiment-versions').fill('1, 2');
    await page.getByTestId('experiment-start').click();
    await page.getByTestId('experiment-status').filter({ hasText: 'COMPLETED' }).waitFor();
    await page.getByTestId('experiment-versions').getByText('v1').waitFor();
    await page.getByTestId('experiment-versions').getByText('v2').waitFor();
    await page.getByTestId('experiment-rows').getByText('lighthouses').first().waitFor();
    await shot(page, 'experiment');

    // 6. Metrics: the chart is drawn from the report.
    await page.getByRole('link', { name: 'Metrics' }).click();
    // One run, then one row of each of the experiment's two versions.
    await page.getByTestId('metric-total').filter({ hasText: '3' }).waitFor();
    await page.locator('[data-testid="chart-status"][data-drawn="true"] canvas').waitFor();
    await page.getByTestId('metrics-by-prompt').getByText('story').waitFor();
    await shot(page, 'metrics');
    // With the prompt chosen: a row per version and per label (the experiment's rows ran by
    // version number, so under no label).
    await page.getByLabel(/^Prompt/).selectOption({ label: 'story' });
    await page.getByTestId('metrics-by-version').getByRole('cell', { name: 'v2', exact: true }).waitFor();
    await page.getByTestId('metrics-by-label').getByRole('cell', { name: 'no label', exact: true }).waitFor();
    await shot(page, 'metrics-prompt');
    // A full load of a lazily loaded page (its chunk preloaded at start-up, no Suspense
    // fallback): the same view, filters from the URL, chart drawn.
    await page.reload();
    await page.getByTestId('metrics-by-version').getByRole('cell', { name: 'v2', exact: true }).waitFor();
    await page.locator('[data-testid="chart-status"][data-drawn="true"] canvas').waitFor();

    // 7. API keys: the secret is shown once; revoking removes the key.
    await page.getByRole('link', { name: 'API keys' }).click();
    await page.getByTestId('key-name').fill('ci-key');
    await page.getByTestId('create-key').click();
    const secret = await page.getByTestId('new-key-secret').textContent();
    if (!secret || secret.length < 20) throw new Error(`no secret shown: ${secret}`);
    await page.getByTestId('keys-table').getByText('ci-key').waitFor();
    await shot(page, 'key-created');
    const withKey = await fetch(`${server.base}/api/auth/me`, { headers: { authorization: `Bearer ${secret}` } });
    if (withKey.status !== 200) throw new Error(`the new key does not work: ${withKey.status}`);
    await page.getByTestId('revoke-ci-key').click();
    await page.getByText('No API keys.').waitFor();
    const revoked = await fetch(`${server.base}/api/auth/me`, { headers: { authorization: `Bearer ${secret}` } });
    if (revoked.status !== 401) throw new Error(`the revoked key still works: ${revoked.status}`);
    await shot(page, 'key-revoked');

    // 8. Log out: back to the login page, and the console is closed again.
    await page.getByTestId('user-menu').click();
    await page.getByTestId('logout').click();
    await page.waitForURL(/\/login/);
    await page.goto(`${server.base}/executions`);
    await page.waitForURL(/\/login\?next=%2Fexecutions/);
    await shot(page, 'logged-out');
  } finally {
    if (context) await context.close();
    server.child.kill('SIGTERM');
    rmSync(profile, { recursive: true, force: true });
    rmSync(workdir, { recursive: true, force: true });
  }
  if (problems.length > 0) throw new Error(`the page reported problems:\n${problems.join('\n')}`);
  console.log(`console e2e passed; screenshots in ${path.relative(process.cwd(), ARTIFACTS)}/`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
