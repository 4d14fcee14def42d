// Drives the console in Debian's chromium (Playwright, no downloaded browser) through what an
// operator does. tests/console.rs prepares a server, a source with an inactive slot, a pipeline
// and a firing alert, runs this script with their ids, and checks the API afterwards as well.
//
// Environment: BASE_URL, API_KEY, SOURCE_ID, SOURCE_NAME, SLOT_NAME, PIPELINE_ID, ALERT_ID,
// SOURCE_PORT (a port where a new source can point), CHROMIUM, PLAYWRIGHT_MODULES, SCREENSHOT.
// Exits non-zero with a message on the first failed expectation.
import { createRequire } from 'node:module';
import assert from 'node:assert/strict';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const require = createRequire(`${env('PLAYWRIGHT_MODULES')}/`);
const { chromium } = require('playwright-core');

const base = env('BASE_URL');
const apiKey = env('API_KEY');
const sourceId = env('SOURCE_ID');
const timeout = 15_000;

/** The API as the test sees it, to check what the console's clicks did. */
async function api(path) {
  const response = await fetch(`${base}/api/v1${path}`, { headers: { Authorization: `Bearer ${apiKey}` } });
  assert.equal(response.status, 200, `GET ${path}`);
  return response.json();
}

async function eventually(what, check) {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM'),
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const problems = [];
// Chromium logs every 4xx answer to a fetch as a console error; the two steps that provoke one
// on purpose (a wrong key, an invalid port) may log exactly that one, nothing else may.
const provoked = {
  'a wrong key shows an error and no data': /status of 401 \(Unauthorized\)$/,
  'an invalid port shows the API message next to the field': /status of 422 \(Unprocessable Entity\)$/,
};

const steps = [];
const step = (name) => {
  steps.push(name);
  console.log(`step: ${name}`);
};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // Every request must stay on the server under test.
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === 'blob:' || url.protocol === 'data:' || url.host === new URL(base).host) return route.continue();
    problems.push(`request left the server: ${url.href}`);
    return route.abort();
  });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return;
    const current = steps[steps.length - 1];
    const expected = provoked[current];
    if (expected && message.type() === 'error' && expected.test(message.text())) {
      delete provoked[current];
      return;
    }
    problems.push(`console ${message.type()} during "${current}": ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    if (!request.url().startsWith('blob:')) problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });

  step('the console page carries the security headers');
  const response = await page.goto(`${base}/console`);
  const headers = response.headers();
  assert.match(headers['content-security-policy'], /default-src 'self'/);
  assert.match(headers['content-security-policy'], /script-src 'self'(;|$)/);
  assert.match(headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');

  step('a wrong key shows an error and no data');
  await page.getByTestId('api-key').fill('not-the-key');
  await page.getByTestId('sign-in').click();
  await page.getByTestId('sign-in-error').waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('sources-table').count(), 0);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');

  step('signing in lists the sources');
  await page.getByTestId('api-key').fill(apiKey);
  await page.getByTestId('sign-in').click();
  const row = page.getByTestId('source-row').filter({ hasText: env('SOURCE_NAME') });
  await row.waitFor();
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('rosetta.apiKey')), apiKey);
  assert.ok(!page.url().includes(apiKey), 'the key is not in the URL');

  step('the source page shows the chart and the inactive slot');
  await row.getByRole('link').click();
  const slotRow = page.getByTestId('slots-table').locator(`tr[data-slot-name="${env('SLOT_NAME')}"]`);
  await slotRow.waitFor();
  assert.match(await slotRow.innerText(), /inactive/);
  await eventually('the chart to load', () =>
    page.getByTestId('wal-chart').evaluate((img) => img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:')),
  );
  await page.screenshot({ path: env('SCREENSHOT'), fullPage: true });

  step('validate lists the preflight checks');
  await page.getByTestId('validate').click();
  await page.getByTestId('checks-list').locator('li[data-check="connect"]').waitFor();
  assert.match(await page.getByTestId('checks-list').innerText(), /wal_level/);

  step('an invalid port shows the API message next to the field');
  await page.goto(`${base}/console#/`);
  await page.getByTestId('new-source').click();
  const form = page.getByTestId('source-form');
  await form.waitFor();
  const newName = `console-made-${Date.now()}`;
  await form.locator('[name="name"]').fill(newName);
  await form.locator('[name="pg_host"]').fill('127.0.0.1');
  await form.locator('[name="pg_port"]').fill('70000');
  await form.locator('[name="pg_database"]').fill('postgres');
  await form.locator('[name="pg_username"]').fill('postgres');
  await form.locator('[name="publication_name"]').fill('console_pub');
  await form.locator('[name="replication_id"]').fill('7');
  await form.getByRole('button', { name: 'Save' }).click();
  const portError = form.locator('[data-testid="form-error"][data-field="pg_port"]');
  await portError.waitFor();
  assert.match(await portError.innerText(), /65535/);
  const fieldOfError = await portError.evaluate((error) => error.closest('.field').querySelector('[name]').name);
  assert.equal(fieldOfError, 'pg_port', 'the message sits next to its field');
  assert.ok(!(await api('/sources?limit=1000')).some((s) => s.name === newName), 'nothing was created');

  step('a valid source is created');
  await form.locator('[name="pg_port"]').fill(env('SOURCE_PORT'));
  await form.getByRole('button', { name: 'Save' }).click();
  await page.getByTestId('slots-table').waitFor();
  assert.ok((await api('/sources?limit=1000')).some((s) => s.name === newName), 'the new source is in the API');

  step('pause and start change the pipeline in the API');
  await page.getByTestId('nav-pipelines').click();
  const pipelineRow = page.locator(`[data-testid="pipeline-row"][data-pipeline-id="${env('PIPELINE_ID')}"]`);
  await pipelineRow.getByTestId('pipeline-pause').click();
  await eventually('the pipeline to pause', async () => (await api(`/pipelines/${env('PIPELINE_ID')}`)).status === 'PAUSE');
  await pipelineRow.getByTestId('pipeline-status').filter({ hasText: 'PAUSE' }).waitFor();
  await pipelineRow.getByTestId('pipeline-start').click();
  await eventually('the pipeline to start', async () => (await api(`/pipelines/${env('PIPELINE_ID')}`)).status === 'START');

  step('a pipeline is renamed through its edit form');
  await pipelineRow.getByTestId('pipeline-edit').click();
  const pipelineForm = page.getByTestId('pipeline-form');
  await pipelineForm.locator('[name="name"]').fill('renamed-in-console');
  await pipelineForm.getByRole('button', { name: 'Save' }).click();
  await page.getByTestId('pipelines-table').waitFor();
  await eventually('the new name', async () => (await api(`/pipelines/${env('PIPELINE_ID')}`)).name === 'renamed-in-console');

  step('an alert is acknowledged');
  await page.getByTestId('nav-alerts').click();
  const alertItem = page.getByTestId('alerts-list').first().locator(`li[data-alert-id="${env('ALERT_ID')}"]`);
  await alertItem.getByTestId('alert-ack').click();
  await eventually('the acknowledgement', async () => (await api(`/alerts/${env('ALERT_ID')}`)).acknowledged_at !== null);
  await page.getByTestId('alerts-list').first().locator(`li[data-alert-id="${env('ALERT_ID')}"] [data-testid="alert-acknowledged"]`).waitFor();

  step('signing out forgets the key');
  await page.getByTestId('sign-out').click();
  await page.getByTestId('api-key').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await context.close();
} finally {
  await browser.close();
}
assert.deepEqual(problems, [], `the browser reported problems:\n${problems.join('\n')}`);
assert.deepEqual(Object.keys(provoked), [], 'each provoked error was seen');
console.log(JSON.stringify({ ok: true, steps: steps.length }));
