import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureConsoleBuilt, launchChromium, REPO_ROOT } from '../support/console.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

const KEY = 'console-alpha-key-0123456789abcd';
const as = { authorization: `Bearer ${KEY}` };
const ADMIN = 'console-admin-key-0123456789abcd';
const asAdmin = { authorization: `Bearer ${ADMIN}` };
/** Markup where the console shows what a function or an administrator wrote: it must stay text. */
const HOSTILE = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
/**
 * Screenshots of each page go here; `scripts/console-screenshots.sh` sets it to docs/screenshots
 * for the README, otherwise a temporary directory (the pictures are still taken and checked).
 */
const SHOTS = process.env.KILN_SCREENSHOTS_DIR ? resolve(REPO_ROOT, process.env.KILN_SCREENSHOTS_DIR) : mkdtempSync(join(tmpdir(), 'kiln-shots-'));

/** The web console in a real headless Chromium, against a real Kiln (issue 25). */
describe('web console', () => {
  let k: TestKiln;
  let browser: Browser;
  let page: Page;
  const made = { sessions: [] as string[], fn: 'console-fn', dlq: 'console-dlq' };
  /** Whatever hostile markup ran or became elements in a page. */
  const executed = (p: Page): Promise<unknown> => p.evaluate(`({ xss: window.__xss, elements: document.querySelectorAll('img[src="x"], img[onerror], script:not([src])').length })`);
  const logIn = async (p: Page, key: string): Promise<void> => {
    await p.goto(k.url);
    await p.getByLabel('API key').fill(key);
    await p.getByRole('button', { name: 'Log in' }).click();
    await p.getByRole('heading', { name: 'Sessions' }).waitFor();
  };

  const shot = async (name: string): Promise<void> => {
    await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    expect(readFileSync(join(SHOTS, `${name}.png`)).subarray(1, 4).toString()).toBe('PNG');
  };
  const terminalText = (): Promise<string> => page.locator('.xterm-rows').innerText();

  beforeAll(async () => {
    ensureConsoleBuilt();
    mkdirSync(SHOTS, { recursive: true });
    k = await startTestKiln({ env: { KILN_API_KEYS: `alpha:${KEY}`, KILN_ADMIN_API_KEYS: ADMIN } });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  });
  afterAll(async () => {
    await browser?.close();
    for (const id of made.sessions) await k?.call('DELETE', `/api/v1/sessions/${id}`, undefined, as);
    await k?.call('DELETE', `/api/v1/functions/${made.fn}`, undefined, as);
    await k?.call('DELETE', `/api/v1/functions/${made.dlq}`, undefined, as);
    await k?.stop();
  });

  it('first load: under 300 KB of gzip-compressed JavaScript, and a login form only', async () => {
    const scripts: Array<Promise<Buffer>> = [];
    page.on('response', (r) => {
      if (r.request().resourceType() === 'script') scripts.push(r.body());
    });
    await page.goto(k.url);
    await page.getByLabel('API key').waitFor();
    await page.waitForLoadState('networkidle');
    const bodies = await Promise.all(scripts);
    expect(bodies.length).toBeGreaterThan(0);
    const gzipped = bodies.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
    expect(gzipped).toBeLessThan(300 * 1024);
    // And the server sends it compressed: the bytes on the wire are the gzip ones.
    const src = await page.locator('script[src]').first().getAttribute('src');
    const res = await fetch(`${k.url}${src}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers.get('content-encoding')).toBe('gzip');
    await shot('login');
  });

  it('logs in with an API key', async () => {
    await page.getByLabel('API key').fill('wrong-key-0123456789abcdef');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Unauthorized' }).waitFor();
    await page.getByLabel('API key').fill(KEY);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Sessions' }).waitFor();
    // Page-side expressions are strings: the tests' TypeScript has no DOM library.
    expect(await page.evaluate('sessionStorage.getItem("kiln.apiKey")')).toBe(KEY);
  });

  it('creates a session, runs `echo hi` in its terminal and sees `hi`', async () => {
    await page.getByRole('button', { name: 'Create session' }).click();
    await page.waitForURL(/#\/sessions\/.+/, { timeout: 60_000 });
    made.sessions.push(decodeURIComponent(page.url().split('#/sessions/')[1] as string));
    await page.getByText('Terminal: connected').waitFor({ timeout: 30_000 });
    await page.locator('.xterm').click();
    await page.keyboard.type('echo hi\n');
    await expect.poll(async () => (await terminalText()).split('\n').map((l) => l.trim()), { timeout: 20_000 }).toContain('hi');
    // The live usage panel shows the sandbox's memory from its cgroup.
    await page.getByText(/MiB of/).waitFor({ timeout: 20_000 });
    await shot('session-terminal');
  });

  it('uploads a file and sees it listed, then downloads it', async () => {
    await page.getByRole('tab', { name: 'Files' }).click();
    await page.locator('#upload').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('uploaded from the console\n') });
    await page.getByRole('cell', { name: 'notes.txt', exact: true }).waitFor({ timeout: 20_000 });
    const stored = await k.call('GET', `/api/v1/sessions/${made.sessions[0]}/files/stat?path=notes.txt`, undefined, as);
    expect(stored.body.size).toBe(26);
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Download notes.txt' }).click();
    const file = await (await download).path();
    expect(readFileSync(file, 'utf8')).toBe('uploaded from the console\n');
    await shot('session-files');
    await page.getByRole('tab', { name: 'Processes' }).click();
    await shot('session-processes');
  });

  it('deploys a function from a zip, invokes it and shows the result and its log line', async () => {
    await page.goto(`${k.url}/#/functions`);
    await page.getByRole('heading', { name: 'Functions' }).waitFor();
    const zip = makeZip([{ path: 'index.js', content: 'exports.handler = async (e) => { console.log("console-log-line", e.n); return { answer: e.n + 1 }; };' }]);
    await page.getByLabel('Name').fill(made.fn);
    await page.getByLabel('Zip file').setInputFiles({ name: 'fn.zip', mimeType: 'application/zip', buffer: zip });
    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.getByRole('status').filter({ hasText: `Deployed ${made.fn}` }).waitFor({ timeout: 30_000 });
    await shot('functions');
    await page.getByRole('link', { name: made.fn }).click();
    await page.getByLabel('Event (JSON)').fill('{"n": 41}');
    await page.getByRole('button', { name: 'Invoke', exact: true }).click();
    const result = page.getByTestId('invoke-result');
    await result.waitFor({ timeout: 60_000 });
    expect(await result.locator('pre').first().innerText()).toContain('"answer": 42');
    expect(await result.locator('pre').nth(1).innerText()).toContain('console-log-line 41');
    await page.getByRole('heading', { name: 'Recent invocations' }).waitFor();
    await expect.poll(() => page.locator('table[aria-label="Executions"] tbody tr').count(), { timeout: 20_000 }).toBeGreaterThan(0);
    await shot('function');
  });

  it('shows the invocation in the execution history with its timings and logs', async () => {
    await page.goto(`${k.url}/#/executions`);
    await page.getByLabel('Function').fill(made.fn);
    await page.getByRole('button', { name: 'Apply' }).click();
    const row = page.locator('table[aria-label="Executions"] tbody tr').filter({ hasText: `${made.fn}:$LATEST` }).first();
    await row.waitFor({ timeout: 20_000 });
    await row.getByRole('button', { name: 'Details' }).click();
    await page.getByText('console-log-line 41').waitFor();
    await page.getByText(/queued .* handler .* total/).waitFor();
    await shot('executions');
  });

  it('the pools view updates as invocations start', async () => {
    await page.goto(`${k.url}/#/pools`);
    const starts = page.locator('[data-template="nodejs"] [data-testid="starts"]');
    await starts.waitFor();
    const before = Number(await starts.innerText());
    await k.call('POST', `/api/v1/functions/${made.fn}/invocations`, { n: 1 }, as);
    await expect.poll(async () => Number(await starts.innerText()), { timeout: 20_000 }).toBeGreaterThan(before);
    await shot('pools');
    await page.goto(`${k.url}/#/templates`);
    await page.getByRole('cell', { name: 'nodejs', exact: true }).waitFor();
    await shot('templates');
  });

  it('pauses and resumes a session from its page; its shell lives on', async () => {
    const id = made.sessions[0] as string;
    await page.goto(`${k.url}/#/sessions/${id}`);
    const status = page.getByTestId('session-status');
    await expect.poll(() => status.innerText(), { timeout: 20_000 }).toBe('running');
    await page.getByText('Terminal: connected').waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await expect.poll(() => status.innerText(), { timeout: 30_000 }).toBe('paused');
    expect((await k.call('GET', `/api/v1/sessions/${id}`, undefined, as)).body.status).toBe('paused');
    await shot('session-paused');
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await expect.poll(() => status.innerText(), { timeout: 30_000 }).toBe('running');
    expect((await k.call('GET', `/api/v1/sessions/${id}`, undefined, as)).body.status).toBe('running');
    // Thawed, not replaced: the terminal opened before the pause still answers.
    await page.locator('.xterm').click();
    await page.keyboard.type('echo thawed-$((6*7))\n');
    await expect.poll(async () => (await terminalText()).split('\n').map((l) => l.trim()), { timeout: 20_000 }).toContain('thawed-42');
  });

  it('lists a dead letter with its error, event and logs as text, and replays it', async () => {
    const failing = `exports.handler = async (e) => { console.log(${JSON.stringify(`log ${HOSTILE}`)}); throw new Error(${JSON.stringify(`failed ${HOSTILE}`)}); };`;
    const created = await k.call('POST', '/api/v1/functions', { name: made.dlq, runtime: 'nodejs20.x', maxRetryAttempts: 0, code: { source: failing } }, as);
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const queued = await k.call('POST', `/api/v1/functions/${made.dlq}/invocations?type=Event`, { n: 7, html: HOSTILE }, as);
    expect(queued.status).toBe(202);
    await expect.poll(async () => (await k.call('GET', `/api/v1/functions/${made.dlq}/dead-letters`, undefined, as)).body.deadLetters.length, { timeout: 60_000 }).toBe(1);
    // Fixed before the replay, so the replay is seen to run the event again.
    expect((await k.call('PUT', `/api/v1/functions/${made.dlq}`, { code: { source: 'exports.handler = async (e) => ({ replayed: e.n })' } }, as)).status).toBe(200);

    await page.goto(`${k.url}/#/functions/${made.dlq}`);
    const row = page.getByRole('row').filter({ hasText: `Error: failed ${HOSTILE}` });
    await row.waitFor({ timeout: 20_000 });
    await row.getByRole('button', { name: 'Details' }).click();
    await page.locator('tr.detail pre').filter({ hasText: `"html":${JSON.stringify(HOSTILE)}` }).waitFor();
    await page.locator('tr.detail pre').filter({ hasText: `log ${HOSTILE}` }).waitFor();
    expect(await executed(page)).toEqual({ elements: 0 });
    await shot('function-dead-letters');
    await row.getByRole('button', { name: `Replay ${queued.body.id as string}` }).click();
    const said = await page.getByRole('status').filter({ hasText: 'as execution' }).innerText({ timeout: 20_000 });
    const replayId = /as execution (\S+)/.exec(said)?.[1] as string;
    await page.getByText('No dead letters').waitFor({ timeout: 20_000 });
    await expect.poll(async () => (await k.call('GET', `/api/v1/executions/${replayId}`, undefined, as)).body.status, { timeout: 60_000 }).toBe('succeeded');
    expect((await k.call('GET', `/api/v1/executions/${replayId}`, undefined, as)).body.result).toEqual({ replayed: 7 });
    expect((await k.call('GET', `/api/v1/functions/${made.dlq}/dead-letters`, undefined, as)).body.deadLetters).toEqual([]);
  });

  it('an administrator edits a template (its text stays text); other keys get no editor', async () => {
    await page.goto(`${k.url}/#/templates`);
    await page.getByRole('cell', { name: 'nodejs', exact: true }).waitFor();
    await page.getByText('Changing a template needs an administrator key.').waitFor();
    expect(await page.getByRole('button', { name: 'Edit nodejs' }).count()).toBe(0);
    // And the server refuses the write itself to such a key: the hidden button is not the barrier.
    expect((await k.call('PUT', '/api/v1/templates/nodejs', { description: 'x' }, as)).status).toBe(403);

    const original = (await k.call('GET', '/api/v1/templates/nodejs', undefined, asAdmin)).body as Record<string, unknown>;
    const admin = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await logIn(admin, ADMIN);
      await admin.goto(`${k.url}/#/templates`);
      await admin.getByRole('button', { name: 'Edit nodejs' }).click();
      const area = admin.getByLabel(/^Template nodejs/);
      const shown = JSON.parse(await area.inputValue()) as Record<string, unknown>;
      expect(shown).toEqual(Object.fromEntries(Object.entries(original).filter(([key]) => key !== 'name')));

      await area.fill('{ not json');
      await admin.getByRole('button', { name: 'Save' }).click();
      await admin.getByRole('alert').filter({ hasText: 'not JSON' }).waitFor();
      await area.fill(JSON.stringify({ ...shown, resources: { ...(shown.resources as object), memoryMB: -5 } }));
      await admin.getByRole('button', { name: 'Save' }).click();
      await admin.getByRole('alert').filter({ hasText: 'memoryMB' }).waitFor({ timeout: 20_000 });
      expect((await k.call('GET', '/api/v1/templates/nodejs', undefined, asAdmin)).body).toEqual(original);

      await area.fill(JSON.stringify({ ...shown, description: HOSTILE }, null, 2));
      await admin.getByRole('button', { name: 'Save' }).click();
      await admin.getByRole('status').filter({ hasText: 'Saved nodejs' }).waitFor({ timeout: 20_000 });
      expect((await k.call('GET', '/api/v1/templates/nodejs', undefined, asAdmin)).body).toEqual({ ...original, description: HOSTILE });
      await admin.getByRole('cell', { name: HOSTILE, exact: true }).waitFor();
      expect(await executed(admin)).toEqual({ elements: 0 });
      await admin.screenshot({ path: join(SHOTS, 'templates-edit.png'), fullPage: true });
    } finally {
      await admin.close();
      await k.call('PUT', '/api/v1/templates/nodejs', original, asAdmin);
    }
  });

  it('fits a phone\'s width and can be used from the keyboard', async () => {
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
    try {
      await phone.goto(k.url);
      await phone.getByLabel('API key').fill(KEY);
      await phone.keyboard.press('Enter');
      await phone.getByRole('heading', { name: 'Sessions' }).waitFor();
      expect(await phone.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
      // Tab reaches the skip link first, then the sections.
      await phone.keyboard.press('Tab');
      expect(await phone.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
      await phone.keyboard.press('Tab');
      await phone.keyboard.press('Tab');
      await phone.keyboard.press('Enter');
      await phone.getByRole('heading', { name: 'Functions' }).waitFor();
      await phone.screenshot({ path: join(SHOTS, 'phone-functions.png'), fullPage: true });
    } finally {
      await phone.close();
    }
  });
});
