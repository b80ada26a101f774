import { createHash } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ensureConsoleBuilt, launchChromium } from '../support/console.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

const ALPHA = 'consec-alpha-key-0123456789abcdef';
const BETA = 'consec-beta-key-0123456789abcdef0';
const alpha = { authorization: `Bearer ${ALPHA}` };
const beta = { authorization: `Bearer ${BETA}` };

/** Markup a hostile sandbox or function puts wherever the console shows its output or names. */
const IMG = `<img src=x onerror="window.__xss='img'">`;
const SVG = `<svg onload="window.__xss='svg'">`;
const SCRIPT = `<script>window.__xss='script'</script>`;

/**
 * The console's barriers, attacked: output and names from sandboxes render as text only; the
 * CSP refuses inline script and unnonced styles; without a key the page is a login form; the
 * terminal's tickets are one-use, per session, per tenant, and never echoed.
 */
describe('console security', () => {
  let k: TestKiln;
  let browser: Browser;
  let session = '';
  const fn = 'consec-fn';

  beforeAll(async () => {
    ensureConsoleBuilt();
    k = await startTestKiln({ env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}` } });
    browser = await launchChromium();
    const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, alpha);
    expect(s.status, JSON.stringify(s.body)).toBe(201);
    session = s.body.id;
  });
  afterAll(async () => {
    await browser?.close();
    if (session) await k?.call('DELETE', `/api/v1/sessions/${session}`, undefined, alpha);
    await k?.call('DELETE', `/api/v1/functions/${fn}`, undefined, alpha);
    await k?.stop();
  });

  const loggedIn = async (): Promise<{ page: Page; violations: string[] }> => {
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    await page.goto(k.url);
    await page.getByLabel('API key').fill(ALPHA);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Sessions' }).waitFor();
    return { page, violations };
  };
  /** Whatever hostile markup ran or became elements, anywhere in the page. */
  const executed = (page: Page): Promise<unknown> =>
    page.evaluate(`({ xss: window.__xss, csp: window.__csp, elements: document.querySelectorAll('img[src="x"], svg[onload], img[onerror], script:not([src])').length })`);

  it('sends a strict CSP, nosniff and the right content types', async () => {
    const index = await fetch(`${k.url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = index.headers.get('content-security-policy') ?? '';
    const directives = Object.fromEntries(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...v]) => [name, v]));
    expect(directives['default-src']).toEqual(["'none'"]);
    expect(directives['script-src']).toEqual(["'self'"]);
    expect(directives['style-src']?.[0]).toBe("'self'");
    expect(directives['style-src']?.[1]).toMatch(/^'nonce-[A-Za-z0-9+/=]{20,}'$/);
    expect(directives['connect-src']).toEqual(["'self'"]);
    expect(directives['frame-ancestors']).toEqual(["'none'"]);
    expect(directives['base-uri']).toEqual(["'none'"]);
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    // A fresh nonce per response, and the page carries that one.
    const again = await fetch(`${k.url}/`);
    expect(again.headers.get('content-security-policy')).not.toBe(csp);
    const html = await index.text();
    expect(html).toContain(`content="${(directives['style-src']?.[1] ?? '').slice(7, -1)}"`);
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    const css = /href="(\/assets\/[^"]+\.css)"/.exec(html)?.[1];
    const jsRes = await fetch(`${k.url}${js}`);
    expect(jsRes.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(jsRes.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect((await fetch(`${k.url}${css}`)).headers.get('content-type')).toMatch(/^text\/css/);
    // Only the built files: no way out of the assets directory, nothing else by name.
    for (const path of ['/assets/..%2f..%2fpackage.json', '/assets/%2e%2e%2findex.html', '/assets/nope.js', '/assets/../../package.json']) {
      const r = await fetch(`${k.url}${path}`);
      expect([r.status, path]).toEqual([404, path]);
    }
  });

  it('without a key, shows the login form and nothing else, on any route', async () => {
    const page = await browser.newPage();
    try {
      const api: string[] = [];
      page.on('request', (r) => {
        if (new URL(r.url()).pathname.startsWith('/api/')) api.push(r.url());
      });
      for (const route of ['/', '/#/sessions', `/#/sessions/${session}`, '/#/functions', '/#/pools']) {
        await page.goto(`${k.url}${route}`);
        await page.getByLabel('API key').waitFor();
        expect(await page.getByRole('navigation').count()).toBe(0);
        expect(await page.locator('h1').allInnerTexts()).toEqual(['Kiln']);
      }
      expect(api).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('renders hostile file names, process arguments, terminal output, results and logs as text', async () => {
    // A sandbox names files, starts processes and prints what it likes.
    for (const name of [`${IMG}.txt`, SVG, 'plain.txt']) {
      const r = await fetch(`${k.url}/api/v1/sessions/${session}/files?path=${encodeURIComponent(name)}`, { method: 'PUT', headers: { ...alpha, 'content-type': 'application/octet-stream' }, body: SCRIPT });
      expect(r.status, name).toBe(200);
    }
    const p = await k.call('POST', `/api/v1/sessions/${session}/processes`, { command: 'sleep', args: ['30', IMG, SCRIPT] }, alpha);
    expect(p.status, JSON.stringify(p.body)).toBe(201);
    const code = `exports.handler = async () => { console.log(${JSON.stringify(IMG + SCRIPT)}); return ${JSON.stringify(SVG + SCRIPT)}; };`;
    expect((await k.call('POST', '/api/v1/functions', { name: fn, runtime: 'nodejs20.x', code: { zipFile: makeZip([{ path: 'index.js', content: code }]).toString('base64') } }, alpha)).status).toBe(201);

    const { page, violations } = await loggedIn();
    try {
      await page.goto(`${k.url}/#/sessions/${session}`);
      await page.getByText('Terminal: connected').waitFor({ timeout: 30_000 });
      await page.locator('.xterm').click();
      await page.keyboard.type(`printf '%s\\n' '${IMG}' '${SCRIPT}'\n`);
      await expect.poll(() => page.locator('.xterm-rows').innerText(), { timeout: 20_000 }).toContain(`window.__xss='script'</script>`);
      await page.getByRole('tab', { name: 'Files' }).click();
      await page.getByRole('cell', { name: `${IMG}.txt`, exact: true }).waitFor({ timeout: 20_000 });
      await page.getByRole('cell', { name: SVG, exact: true }).waitFor();
      await page.getByRole('tab', { name: 'Processes' }).click();
      await page.getByText(`sleep 30 ${IMG} ${SCRIPT}`).waitFor({ timeout: 20_000 });

      await page.goto(`${k.url}/#/functions/${fn}`);
      await page.getByRole('button', { name: 'Invoke', exact: true }).click();
      const result = page.getByTestId('invoke-result');
      await result.waitFor({ timeout: 60_000 });
      // The result is shown as the JSON it is: a string, quoted.
      expect(await result.locator('pre').first().innerText()).toBe(JSON.stringify(SVG + SCRIPT));
      expect(await result.locator('pre').nth(1).innerText()).toContain(IMG + SCRIPT);
      await page.goto(`${k.url}/#/executions`);
      await page.getByRole('button', { name: 'Details' }).first().click();
      await page.locator('tr.detail pre').filter({ hasText: IMG }).waitFor();

      expect(await executed(page)).toEqual({ elements: 0 });
      // Normal use, the terminal's styles among it, broke no rule of the CSP.
      expect(violations).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('the CSP itself refuses inline script, inline handlers and unnonced styles that got into the page', async () => {
    const { page, violations } = await loggedIn();
    try {
      // As if a rendering bug had let markup through: the CSP is the second barrier.
      await page.evaluate(`(() => {
        const div = document.createElement('div');
        div.innerHTML = '<img src="data:," onerror="window.__csp=1">';
        document.body.append(div);
        const s = document.createElement('script');
        s.textContent = 'window.__csp = 2';
        document.body.append(s);
        const st = document.createElement('style');
        st.textContent = 'body { background: rgb(1, 2, 3) !important }';
        document.head.append(st);
      })()`);
      await page.waitForTimeout(500);
      expect(await page.evaluate('window.__csp')).toBeUndefined();
      // The inline script element was blocked, not merely never run.
      expect(violations.some((v) => /script/i.test(v))).toBe(true);
      expect(await page.evaluate('getComputedStyle(document.body).backgroundColor')).not.toBe('rgb(1, 2, 3)');
    } finally {
      await page.close();
    }
  });

  describe('terminal tickets', () => {
    const ticket = async (key = alpha, id = session): Promise<{ status: number; ticket: string }> => {
      const r = await k.call('POST', `/api/v1/sessions/${id}/pty-ticket`, undefined, key);
      return { status: r.status, ticket: r.body?.ticket };
    };
    const open = (id: string, protocols: string[], headers: Record<string, string> = {}): Promise<{ status: number; protocol?: string; ws?: WebSocket }> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty`, protocols, { headers });
        ws.on('open', () => resolve({ status: 101, protocol: ws.protocol, ws }));
        ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode ?? 0 }));
        ws.on('error', () => resolve({ status: -1 }));
      });

    it('opens the terminal once, as its tenant, choosing kiln.pty and never echoing the ticket', async () => {
      const t = await ticket();
      expect(t.status).toBe(201);
      expect(t.ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Kept for 30 s at most, under its hash only.
      const key = `${k.prefix}:ptyticket:${createHash('sha256').update(t.ticket).digest('hex')}`;
      const ttl = await k.redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(30_000);
      expect((await k.redis.keys(`${k.prefix}:ptyticket:*`)).join()).not.toContain(t.ticket);
      const first = await open(session, ['kiln.pty', `kiln.ticket.${t.ticket}`]);
      expect(first.status).toBe(101);
      expect(first.protocol).toBe('kiln.pty');
      first.ws?.close();
      // Used: refused, on this replica and any other (the record is gone from Redis).
      expect((await open(session, ['kiln.pty', `kiln.ticket.${t.ticket}`])).status).toBe(401);
      expect(await k.redis.exists(key)).toBe(0);
    });

    it('refuses a ticket for another session, a forged one, and one offered from a foreign page', async () => {
      const t = await ticket();
      expect((await open('some-other-session', ['kiln.pty', `kiln.ticket.${t.ticket}`])).status).toBe(401);
      // Spent by that attempt: it cannot be tried against the right session afterwards.
      expect((await open(session, ['kiln.pty', `kiln.ticket.${t.ticket}`])).status).toBe(401);
      expect((await open(session, ['kiln.pty', 'kiln.ticket.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'])).status).toBe(401);
      expect((await open(session, ['kiln.pty', 'kiln.ticket.short'])).status).toBe(401);
      // A ticket offered beside a valid key still has to be valid: the ticket is the credential looked at.
      expect((await open(session, ['kiln.pty', 'kiln.ticket.forged'], alpha)).status).toBe(401);
      const u = await ticket();
      expect((await open(session, ['kiln.pty', `kiln.ticket.${u.ticket}`], { origin: 'https://evil.example' })).status).toBe(403);
    });

    it('gives another tenant no ticket for the session', async () => {
      expect((await ticket(beta)).status).toBe(404);
      expect((await ticket(alpha, 'no-such-session')).status).toBe(404);
      expect((await k.call('POST', `/api/v1/sessions/${session}/pty-ticket`)).status).toBe(401);
    });
  });
});
