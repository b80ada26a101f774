/**
 * Signed file URLs (POST /api/v1/sessions/{id}/files/url), attacked: a link works without a key
 * for exactly its session, path and method until it expires; tampered claims, another method,
 * an expired link, another tenant's session and a deleted session are refused; the public link
 * routes (file links and GetFunction's code links) are paced per client address.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const ALPHA = 'links-alpha-key-0123456789abcdef00';
const BETA = 'links-beta-key-0123456789abcdef000';
const ADMIN = 'links-admin-key-0123456789abcdef00';
// High enough that the other tests' few link fetches from 127.0.0.1 (ten in a row, on a quiet
// machine well inside a second) never meet it; the flood test sends four times it from 127.0.0.2.
const RPS = 50;

let k: TestKiln;
const as = (key: string) => ({ authorization: `Bearer ${key}` });
let session = '';

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_PUBLIC_LINK_RPS: String(RPS) },
  });
  expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'beta' }, as(ADMIN))).status).toBe(201);
  const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, as(ALPHA));
  expect(s.status, JSON.stringify(s.body)).toBe(201);
  session = s.body.id as string;
  const put = await fetch(`${k.url}/api/v1/sessions/${session}/files?path=shared/report.txt`, { method: 'PUT', body: 'the report', headers: as(ALPHA) });
  expect(put.status).toBe(200);
}, 120_000);
afterAll(async () => {
  if (session) await k?.call('DELETE', `/api/v1/sessions/${session}`, undefined, as(ALPHA));
  await k?.stop();
});

async function link(body: Record<string, unknown>, key = ALPHA, id = session): Promise<{ status: number; body: any }> {
  const res = await k.call('POST', `/api/v1/sessions/${id}/files/url`, body, as(key));
  return { status: res.status, body: res.body };
}
const codeOf = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code;

/** A token with its claims rewritten by `change`, keeping the original signature. */
function tampered(url: string, change: (claims: Record<string, unknown>) => void): string {
  const token = url.slice(url.lastIndexOf('/') + 1);
  const [payload = '', sig = ''] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  change(claims);
  return `${url.slice(0, url.lastIndexOf('/') + 1)}${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
}

describe('signed file URLs', () => {
  it('downloads with a GET link and no key (Range too), and refuses the link for PUT', async () => {
    const made = await link({ path: 'shared/report.txt', method: 'GET', expiresInSeconds: 60 });
    expect(made.status, JSON.stringify(made.body)).toBe(200);
    expect(made.body).toMatchObject({ method: 'GET', path: 'shared/report.txt' });
    expect(Date.parse(made.body.expiresAt) - Date.now()).toBeLessThanOrEqual(60_000);
    const url = made.body.url as string;
    expect(url.startsWith(`${k.url}/api/v1/file-links/`)).toBe(true);
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('the report');
    const part = await fetch(url, { headers: { range: 'bytes=4-9' } });
    expect([part.status, await part.text(), part.headers.get('content-range')]).toEqual([206, 'report', 'bytes 4-9/10']);
    const put = await fetch(url, { method: 'PUT', body: 'overwritten' });
    expect([put.status, await codeOf(put)]).toEqual([403, 'FileLinkRefused']);
    expect(await (await fetch(`${k.url}/api/v1/sessions/${session}/files?path=shared/report.txt`, { headers: as(ALPHA) })).text()).toBe('the report');
    // The link is the only credential it is: every other route still wants a key.
    expect((await fetch(`${k.url}/api/v1/sessions/${session}/files?path=shared/report.txt`)).status).toBe(401);
  });

  it('uploads with a PUT link and no key, and refuses the link for GET', async () => {
    const made = await link({ path: 'inbox/upload.bin', method: 'PUT' });
    expect(made.status).toBe(200);
    const put = await fetch(made.body.url as string, { method: 'PUT', body: Buffer.alloc(300_000, 9), headers: { 'content-type': 'application/octet-stream' } });
    const info = (await put.json()) as Record<string, unknown>;
    expect(put.status, JSON.stringify(info)).toBe(200);
    expect(info).toMatchObject({ path: '/workspace/inbox/upload.bin', size: 300_000 });
    const get = await fetch(made.body.url as string);
    expect([get.status, await codeOf(get)]).toEqual([403, 'FileLinkRefused']);
  });

  it('refuses tampered claims: another path, method, session, tenant or a later expiry', async () => {
    const url = (await link({ path: 'shared/report.txt', method: 'GET' })).body.url as string;
    const other = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, as(ALPHA));
    try {
      const changes: ((c: Record<string, unknown>) => void)[] = [
        (c) => (c.p = '../../etc/passwd'),
        (c) => (c.p = 'inbox/upload.bin'),
        (c) => (c.m = 'PUT'),
        (c) => (c.s = other.body.id),
        (c) => (c.t = 'beta'),
        (c) => (c.e = (c.e as number) + 3_600_000),
      ];
      for (const change of changes) {
        const res = await fetch(tampered(url, change), { method: 'GET' });
        expect([res.status, await codeOf(res)]).toEqual([403, 'FileLinkRefused']);
      }
      for (const bad of ['x', 'a.b.c', `${url.slice(url.lastIndexOf('/') + 1).split('.')[0]}.`, 'x..y']) {
        const res = await fetch(`${k.url}/api/v1/file-links/${bad}`);
        expect(res.status, bad).toBe(403);
      }
    } finally {
      await k.call('DELETE', `/api/v1/sessions/${other.body.id}`, undefined, as(ALPHA));
    }
  });

  it('bounds the expiry and refuses an expired link', async () => {
    for (const expiresInSeconds of [0, -5, 3601, 1.5]) expect((await link({ path: 'a', expiresInSeconds })).status, String(expiresInSeconds)).toBe(400);
    expect((await link({ path: 'a', method: 'DELETE' })).status).toBe(400);
    expect((await link({ path: '' })).status).toBe(400);
    const made = await link({ path: 'shared/report.txt', expiresInSeconds: 1 });
    expect((await fetch(made.body.url as string)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    const late = await fetch(made.body.url as string);
    expect([late.status, await codeOf(late)]).toEqual([403, 'FileLinkRefused']);
  });

  it('keeps a link inside its workspace: a path leaving it is refused when used', async () => {
    const made = await link({ path: '../../etc/passwd', method: 'GET' });
    expect(made.status).toBe(200);
    const res = await fetch(made.body.url as string);
    expect([res.status, await codeOf(res)]).toEqual([400, 'PathOutsideWorkspace']);
  });

  it('gives another tenant 404 for the session, and a deleted session kills its links', async () => {
    expect((await link({ path: 'shared/report.txt' }, BETA)).status).toBe(404);
    const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, as(ALPHA));
    expect(s.status).toBe(201);
    await fetch(`${k.url}/api/v1/sessions/${s.body.id}/files?path=f.txt`, { method: 'PUT', body: 'short-lived', headers: as(ALPHA) });
    const made = await link({ path: 'f.txt', expiresInSeconds: 600 }, ALPHA, s.body.id as string);
    expect(await (await fetch(made.body.url as string)).text()).toBe('short-lived');
    expect((await k.call('DELETE', `/api/v1/sessions/${s.body.id}`, undefined, as(ALPHA))).status).toBeLessThan(300);
    const after = await fetch(made.body.url as string);
    expect([after.status, await codeOf(after)]).toEqual([404, 'SessionNotFound']);
  });

  it('paces the public link routes per client address (file links and code links), other addresses unaffected', async () => {
    // From 127.0.0.2, so the other tests' address keeps its own bucket.
    const hit = (path: string) =>
      new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
        const req = request(`${k.url}${path}`, { localAddress: '127.0.0.2' }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
        });
        req.on('error', reject);
        req.end();
      });
    for (const path of ['/api/v1/file-links/forged.token', '/api/v1/function-code/forged.token']) {
      const answers = await Promise.all(Array.from({ length: RPS * 4 }, () => hit(path)));
      const limited = answers.filter((a) => a.status === 429);
      expect(limited.length, path).toBeGreaterThan(0);
      expect(answers.filter((a) => a.status === 403).length, path).toBeGreaterThan(0);
      expect(limited[0]?.retryAfter).toBe('1');
      expect(JSON.parse(limited[0]?.body ?? '{}')).toMatchObject({ error: { code: 'TooManyRequests' } });
      // Another address is not slowed by this one's flood.
      expect((await fetch(`${k.url}${path}`)).status).toBe(403);
      await new Promise((r) => setTimeout(r, 1200));
    }
  });
});
