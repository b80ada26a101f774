import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2, maxSandboxes: 8, sandboxesPerExecutor: 8 } }, python: null, shell: null, provided: null },
  });
});
afterAll(async () => {
  await k?.stop();
});

const until = async (what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};
const run = (code: string, template = 'nodejs') => k.call('POST', '/api/v1/executions', { code, language: 'nodejs', template });
const warm = (template = 'nodejs') => k.redis.llen(`${k.prefix}:warm:${template}:nodejs`);
const sandboxes = (template = 'nodejs') => k.redis.smembers(`${k.prefix}:sbxs:${template}`);
/** Creates a Node.js template with these pool settings through the API. */
const createTemplate = async (name: string, pool: Record<string, number>): Promise<void> => {
  expect((await k.call('POST', '/api/v1/templates', { name, image: 'x', runtimes: ['nodejs20.x'], pool })).status).toBe(201);
};
let seq = 0;
const fresh = (): string => `exports.handler = async () => ({ n: ${++seq}, at: ${Date.now()} })`;

describe('warm pools and start types', () => {
  it('has minIdle warm sandboxes as soon as it serves', async () => {
    expect(await warm()).toBe(2);
    expect((await sandboxes()).length).toBe(2);
  });

  it('runs new code on a pre-warmed sandbox (warm), the same code again hot, and refills minIdle', async () => {
    const code = fresh();
    const first = await run(code);
    expect(first.body.status).toBe('succeeded');
    expect(first.body.startType).toBe('warm');
    const second = await run(code);
    expect(second.body.startType).toBe('hot');
    await until('minIdle to be refilled', async () => (await warm()) === 2);
    // Two warm plus the instance that now holds the code.
    expect((await sandboxes()).length).toBe(3);
  });

  it('gives every result a consistent timing breakdown', async () => {
    const res = await run(fresh());
    const t = res.body.timings;
    for (const f of ['queuedMs', 'scheduleMs', 'initMs', 'handlerMs', 'totalMs']) expect(t[f]).toBeGreaterThanOrEqual(0);
    expect(t.handlerMs).toBe(res.body.durationMs);
    expect(t.totalMs).toBeGreaterThanOrEqual(t.handlerMs);
    // Parts measured on one clock add up to no more than the whole (1 ms of rounding).
    expect(t.queuedMs + t.scheduleMs + t.initMs + t.handlerMs).toBeLessThanOrEqual(t.totalMs + 1);
    expect(t.initMs).toBeGreaterThan(0);
  });

  it('starts cold when no warm sandbox is left', async () => {
    await until('minIdle to be refilled', async () => (await warm()) === 2);
    const [a, b, c] = await Promise.all([run(fresh()), run(fresh()), run(fresh())]);
    const types = [a, b, c].map((r) => r.body.startType).sort();
    expect(types).toContain('cold');
    expect(types.filter((t) => t === 'warm').length).toBeLessThanOrEqual(2);
  });
});

describe('reaping', () => {
  it('reaps idle instances after idleTtlMs, keeps minIdle warm, and stops an empty executor', async () => {
    await createTemplate('reap', { minIdle: 0, maxSandboxes: 4, sandboxesPerExecutor: 4, idleTtlMs: 1000, maxLifetimeMs: 600_000 });
    const res = await run(fresh(), 'reap');
    expect(res.body.startType).toBe('cold');
    const [id] = await sandboxes('reap');
    expect(id).toBeDefined();
    // Parked on this replica for the function's next job (LeaseCache), then back in Redis.
    await until('the lease to come back', async () => (await k.redis.hget(`${k.prefix}:sbx:${id}`, 'state')) === 'idle', 1000);
    await until('the idle instance to be reaped', async () => (await sandboxes('reap')).length === 0, 10_000);
    await until('the empty executor to stop', async () => (await k.redis.zcard(`${k.prefix}:exes:reap`)) === 0, 10_000);
    // The next request starts from scratch.
    expect((await run(fresh(), 'reap')).body.status).toBe('succeeded');
  });

  it('retires idle sandboxes past maxLifetimeMs and keeps the pool at minIdle', async () => {
    await createTemplate('life', { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4, idleTtlMs: 600_000, maxLifetimeMs: 2000 });
    await until('a warm sandbox', async () => (await warm('life')) === 1);
    const [first] = await k.redis.lrange(`${k.prefix}:warm:life:nodejs`, 0, -1);
    const hot = await run(fresh(), 'life');
    expect(hot.body.status).toBe('succeeded');
    await until(
      'the old sandboxes to be retired',
      async () => {
        const ids = await sandboxes('life');
        return first !== undefined && !ids.includes(first) && ids.length === 1;
      },
      10_000,
    );
    await until('the replacement to be warm', async () => (await warm('life')) === 1);
  });

  it('gives a template full of idle instances its minIdle warm sandbox back, from the least recently used', async () => {
    await createTemplate('full', { minIdle: 1, maxSandboxes: 2, sandboxesPerExecutor: 2, idleTtlMs: 600_000, maxLifetimeMs: 600_000 });
    await until('a warm sandbox', async () => (await warm('full')) === 1);
    const [a, b] = [fresh(), fresh()];
    expect((await run(a, 'full')).body.startType).toBe('warm');
    await until('the warm sandbox to be refilled', async () => (await warm('full')) === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect((await run(b, 'full')).body.startType).toBe('warm');
    // Full: two instances, no warm sandbox. Once they have been idle for a while, the keeper
    // destroys the least recently used (a's) and boots a warm sandbox in its place.
    expect((await sandboxes('full')).length).toBe(2);
    await until('the warm sandbox to come back', async () => (await warm('full')) === 1, 10_000);
    expect((await sandboxes('full')).length).toBe(2);
    expect((await run(b, 'full')).body.startType).toBe('hot');
    expect((await run(a, 'full')).body.startType).toBe('warm');
    expect((await k.call('DELETE', '/api/v1/templates/full')).status).toBe(204);
  });

  it('reclaims a lease whose leaseUntil passed (its control plane died) and refills the pool', async () => {
    await until('minIdle to be refilled', async () => (await warm()) === 2);
    // What a control plane that died mid-lease leaves behind: a busy record nobody will release.
    const id = await k.redis.lpop(`${k.prefix}:warm:nodejs:nodejs`);
    expect(id).toBeTruthy();
    await k.redis.hset(`${k.prefix}:sbx:${id}`, 'state', 'busy', 'owner', 'dead-replica:1', 'leaseUntil', Date.now() - 1);
    await until('the lease to be reclaimed', async () => (await k.redis.exists(`${k.prefix}:sbx:${id}`)) === 0, 10_000);
    expect(await sandboxes()).not.toContain(id);
    await until('minIdle to be refilled', async () => (await warm()) === 2);
    const health = await k.call('GET', '/api/v1/health');
    const onExecutors = health.body.executors
      .filter((e: { template: string }) => e.template === 'nodejs')
      .reduce((n: number, e: { sandboxes: number }) => n + e.sandboxes, 0);
    // The executor killed the reclaimed sandbox: it runs exactly what Redis knows about.
    expect(onExecutors).toBe((await sandboxes()).length);
  });

  it('never reaps a sandbox while it is leased (reaping is atomic against leasing)', async () => {
    await createTemplate('race', { minIdle: 2, maxSandboxes: 4, sandboxesPerExecutor: 4, idleTtlMs: 1000, maxLifetimeMs: 1000 });
    await until('warm sandboxes', async () => (await warm('race')) === 2);
    // Sandboxes expire every second while requests keep leasing them: none may fail.
    const results = [];
    for (let i = 0; i < 15; i++) {
      results.push(...(await Promise.all([run('exports.handler = async () => 1', 'race'), run(fresh(), 'race')])));
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(results.filter((r) => r.body.status !== 'succeeded').map((r) => r.body.error ?? r.body)).toEqual([]);
  });
});

describe('lease hand-over on one replica', () => {
  // A hold long enough that a slow machine cannot turn the hand-over into a Redis round trip.
  let h: TestKiln;
  beforeAll(async () => {
    h = await startTestKiln({ env: { KILN_LEASE_HOLD_MS: '1000' } });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('hands a finished sandbox to the next job of its function without Redis, then gives it back', async () => {
    const code = fresh();
    const call = () => h.call('POST', '/api/v1/executions', { code, language: 'nodejs' });
    expect((await call()).body.startType).toBe('warm');
    // Still leased (busy) in Redis, by this replica, waiting for the function's next job.
    const ids = await h.redis.smembers(`${h.prefix}:sbxs:nodejs`);
    const records = await Promise.all(ids.map((id) => h.redis.hmget(`${h.prefix}:sbx:${id}`, 'state', 'owner')));
    const parked = ids.filter((_, i) => records[i]?.[0] === 'busy');
    expect(parked.length).toBe(1);
    const id = parked[0] as string;
    const owner = await h.redis.hget(`${h.prefix}:sbx:${id}`, 'owner');
    const again = await call();
    expect(again.body.startType).toBe('hot');
    // The same lease went on: a Redis acquire would have written a new owner.
    expect(await h.redis.hget(`${h.prefix}:sbx:${id}`, 'owner')).toBe(owner);
    expect((await fetch(`${h.url}/metrics`).then((r) => r.text())).match(/^kiln_pool_sandboxes\{template="nodejs",state="busy"\} (\d+)/m)?.[1]).toBe('0');
    // Nobody else comes: back in Redis as an idle instance of the function, first on its hot list.
    await until('the lease to come back', async () => (await h.redis.hget(`${h.prefix}:sbx:${id}`, 'state')) === 'idle', 5000);
    const fn = await h.redis.hget(`${h.prefix}:sbx:${id}`, 'fn');
    expect(await h.redis.lrange(`${h.prefix}:hot:nodejs:${fn ?? ''}`, 0, -1)).toEqual([id]);
    expect((await call()).body.startType).toBe('hot');
  });
});
