import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const ALPHA = 'history-alpha-key-0123456789abcd';
const BETA = 'history-beta-key-0123456789abcde';
const ADMIN = 'history-admin-key-0123456789abcd';
const as = (key: string) => ({ authorization: `Bearer ${key}` });

/** GET /api/v1/executions: a tenant's finished executions, newest first, filtered and paged. */
describe('execution history', () => {
  let k: TestKiln;
  const ids: Record<string, string> = {};
  const list = async (query: string, key = ALPHA) => {
    const r = await k.call('GET', `/api/v1/executions${query ? `?${query}` : ''}`, undefined, as(key));
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body as { executions: Array<{ id: string; status: string; logs: string; result?: unknown; function?: { name: string; version: string }; startType?: string; finishedAt: string }>; nextCursor?: string };
  };
  const waitIndexed = async (id: string) => {
    // The index is written right after the record is delivered: wait until it shows.
    for (let i = 0; i < 100; i++) {
      if ((await list('limit=100')).executions.some((e) => e.id === id)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`execution ${id} never showed in the history`);
  };

  beforeAll(async () => {
    k = await startTestKiln({ env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN } });
    const run = async (name: string, code: string, event: unknown = {}) => {
      const r = await k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event }, as(ALPHA));
      ids[name] = r.body.id;
    };
    await run('ok', 'exports.handler = async (e) => { console.log("history-line"); return { n: 2 ** 64 + 1 }; }');
    await run('fails', 'exports.handler = async () => { throw new Error("boom") }');
    for (const fn of ['hist-a', 'hist-b']) {
      expect((await k.call('POST', '/api/v1/functions', { name: fn, runtime: 'nodejs20.x', code: { source: `exports.handler = async () => "${fn}"` } }, as(ALPHA))).status).toBe(201);
      ids[fn] = (await k.call('POST', `/api/v1/functions/${fn}/invocations`, {}, as(ALPHA))).body.id;
    }
    ids['hist-a-2'] = (await k.call('POST', '/api/v1/functions/hist-a/invocations', {}, as(ALPHA))).body.id;
    await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => "beta-only"', language: 'nodejs' }, as(BETA));
    await waitIndexed(ids['hist-a-2'] as string);
  });
  afterAll(async () => {
    await k?.stop();
  });

  it('lists the tenant\'s executions newest first, with records and logs', async () => {
    const page = await list('');
    expect(page.executions.map((e) => e.id)).toEqual([ids['hist-a-2'], ids['hist-b'], ids['hist-a'], ids.fails, ids.ok]);
    const ok = page.executions.find((e) => e.id === ids.ok);
    expect(ok?.logs).toContain('history-line');
    // The result as the handler wrote it, byte for byte, as on every other surface.
    const raw = await fetch(`${k.url}/api/v1/executions`, { headers: as(ALPHA) }).then((r) => r.text());
    expect(raw).toContain('"result":{"n":18446744073709552000}');
    expect(page.executions.find((e) => e.id === ids['hist-a'])?.function).toEqual({ name: 'hist-a', version: '$LATEST' });
    expect(page.nextCursor).toBeUndefined();
  });

  it('filters by function, status, start type, template and time', async () => {
    expect((await list('function=hist-a')).executions.map((e) => e.id)).toEqual([ids['hist-a-2'], ids['hist-a']]);
    expect((await list('status=failed')).executions.map((e) => e.id)).toEqual([ids.fails]);
    expect((await list('status=succeeded&function=hist-b')).executions.map((e) => e.id)).toEqual([ids['hist-b']]);
    const hot = (await list('startType=hot')).executions;
    expect(hot.every((e) => e.startType === 'hot')).toBe(true);
    expect((await list('template=python')).executions).toEqual([]);
    const all = (await list('')).executions;
    const middle = Date.parse(all[2]?.finishedAt as string);
    expect((await list(`until=${middle}`)).executions.every((e) => Date.parse(e.finishedAt) <= middle)).toBe(true);
    expect((await list(`since=${new Date(middle).toISOString()}`)).executions.every((e) => Date.parse(e.finishedAt) >= middle)).toBe(true);
    expect((await list(`since=${Date.now() + 60_000}`)).executions).toEqual([]);
  });

  it('pages with a cursor, each execution once, however new ones arrive meanwhile', async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await list(`limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...page.executions.map((e) => e.id));
      cursor = page.nextCursor;
      // A new execution between pages lands on top, not in the pages still to come.
      if (pages++ === 0) await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => 0', language: 'nodejs' }, as(ALPHA));
    } while (cursor && pages < 10);
    expect(seen).toEqual([ids['hist-a-2'], ids['hist-b'], ids['hist-a'], ids.fails, ids.ok]);
  });

  it('answers bad queries with 400 and a code', async () => {
    for (const q of ['cursor=not-a-cursor', 'status=running', 'limit=0', 'limit=101', 'since=yesterday', 'startType=lukewarm', 'tenant=Not_A_Tenant']) {
      const r = await k.call('GET', `/api/v1/executions?${q}`, undefined, as(ALPHA));
      expect([q, r.status, typeof r.body.error?.code]).toEqual([q, 400, 'string']);
    }
  });

  it('shows a tenant only its own history; an administrator any tenant\'s', async () => {
    const beta = (await list('', BETA)).executions;
    expect(beta.map((e) => e.result)).toEqual(['beta-only']);
    expect((await list('tenant=alpha', BETA)).executions).toEqual([]);
    expect((await list('tenant=alpha', ADMIN)).executions.map((e) => e.id)).toContain(ids.ok);
    expect((await k.call('GET', '/api/v1/executions')).status).toBe(401);
  });
});
