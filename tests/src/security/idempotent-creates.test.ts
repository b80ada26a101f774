/**
 * `Idempotency-Key` on creates (POST /api/v1/sessions and /api/v1/functions), as a retrying
 * client and a hostile one use it: a repeat gets the first answer and creates nothing; the same
 * key with another body is 422; concurrent repeats make one resource; a failed create keeps
 * nothing; another tenant's identical key is its own; the kept answer expires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const ALPHA = 'idem-alpha-key-0123456789abcdef000';
const BETA = 'idem-beta-key-0123456789abcdef0000';
const ADMIN = 'idem-admin-key-0123456789abcdef000';

let k: TestKiln;
const made: { key: string; id: string }[] = [];
const as = (key: string, idem?: string) => ({ authorization: `Bearer ${key}`, ...(idem === undefined ? {} : { 'idempotency-key': idem }) });

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2, maxSandboxes: 8 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN },
  });
  expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'beta' }, as(ADMIN))).status).toBe(201);
}, 120_000);
afterAll(async () => {
  for (const m of made) await k?.call('DELETE', `/api/v1/sessions/${m.id}`, undefined, as(m.key));
  await k?.stop();
});

async function session(key: string, idem: string | undefined, body: Record<string, unknown>) {
  const res = await k.call('POST', '/api/v1/sessions', body, as(key, idem));
  if (res.status === 201 && !made.some((m) => m.id === res.body.id)) made.push({ key, id: res.body.id as string });
  return res;
}
const sessionCount = async (key: string): Promise<number> => ((await k.call('GET', '/api/v1/sessions', undefined, as(key))).body.sessions as unknown[]).length;

describe('idempotent creates', () => {
  it('answers a repeated session create with the first session, whatever the order of the body keys', async () => {
    const before = await sessionCount(ALPHA);
    const first = await session(ALPHA, 'retry-session-1', { template: 'nodejs', metadata: { a: '1', b: '2' }, timeoutMs: 60_000 });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await session(ALPHA, 'retry-session-1', { timeoutMs: 60_000, metadata: { b: '2', a: '1' }, template: 'nodejs' });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(first.body.id);
    expect(await sessionCount(ALPHA)).toBe(before + 1);
    // The same key with another body is a client's mistake, never the first session.
    const other = await session(ALPHA, 'retry-session-1', { template: 'nodejs', metadata: { a: 'changed' } });
    expect([other.status, other.body.error?.code]).toEqual([422, 'IdempotencyKeyReused']);
    expect(await sessionCount(ALPHA)).toBe(before + 1);
  }, 120_000);

  it('makes one session of concurrent repeats', async () => {
    const answers = await Promise.all(Array.from({ length: 4 }, () => session(ALPHA, 'concurrent-1', { template: 'nodejs' })));
    for (const a of answers) expect([201, 409], JSON.stringify(a.body)).toContain(a.status);
    for (const a of answers.filter((x) => x.status === 409)) expect(a.body.error.code).toBe('IdempotencyKeyInProgress');
    const ids = new Set(answers.filter((a) => a.status === 201).map((a) => a.body.id as string));
    expect(ids.size).toBe(1);
    // Once it has answered, every repeat gets that session.
    const later = await session(ALPHA, 'concurrent-1', { template: 'nodejs' });
    expect([later.status, ids.has(later.body.id as string)]).toEqual([201, true]);
  }, 120_000);

  it('keeps nothing for a failed create, so the key can be used again', async () => {
    const failed = await session(ALPHA, 'after-failure', { template: 'no-such-template' });
    expect(failed.status).toBe(404);
    const ok = await session(ALPHA, 'after-failure', { template: 'nodejs' });
    expect([ok.status, ok.headers.get('idempotent-replayed')]).toEqual([201, null]);
  }, 120_000);

  it('keeps keys per tenant: beta with alpha\'s key gets a session of its own, and never alpha\'s', async () => {
    const a = await session(ALPHA, 'tenant-key', { template: 'nodejs' });
    const b = await session(BETA, 'tenant-key', { template: 'nodejs' });
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(b.body.id).not.toBe(a.body.id);
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    expect((await k.call('GET', `/api/v1/sessions/${a.body.id}`, undefined, as(BETA))).status).toBe(404);
  }, 120_000);

  it('answers a repeated function create with the first function instead of 409, and 422 for another body', async () => {
    const body = { name: 'idem-fn', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => 1' } };
    const first = await k.call('POST', '/api/v1/functions', body, as(ALPHA, 'fn-create-1'));
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const again = await k.call('POST', '/api/v1/functions', body, as(ALPHA, 'fn-create-1'));
    expect([again.status, again.headers.get('idempotent-replayed')]).toEqual([201, 'true']);
    expect(again.body).toEqual(first.body);
    // Without the key the name is taken, as before.
    expect((await k.call('POST', '/api/v1/functions', body, as(ALPHA))).status).toBe(409);
    const other = await k.call('POST', '/api/v1/functions', { ...body, name: 'idem-fn-2' }, as(ALPHA, 'fn-create-1'));
    expect([other.status, other.body.error?.code]).toEqual([422, 'IdempotencyKeyReused']);
    expect((await k.call('GET', '/api/v1/functions/idem-fn-2', undefined, as(ALPHA))).status).toBe(404);
  }, 120_000);

  it('refuses malformed keys with 400, and lets the kept answer expire (24 h) without holding the key itself', async () => {
    for (const bad of ['x'.repeat(257), 'with space', '']) {
      const res = await k.call('POST', '/api/v1/functions', { name: 'never', runtime: 'nodejs20.x', code: { source: '1' } }, as(ALPHA, bad));
      expect([res.status, res.body.error?.code], JSON.stringify(bad)).toEqual([400, 'InvalidRequest']);
    }
    const stored = await k.redis.keys(`${k.prefix}:idem:alpha:*`);
    expect(stored.length).toBeGreaterThan(0);
    for (const key of stored) {
      expect(key).not.toContain('fn-create-1');
      const ttl = await k.redis.ttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(24 * 3600);
    }
  });
});
