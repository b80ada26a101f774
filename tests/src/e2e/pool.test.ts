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
    const t = {
      name: 'reap',
      image: 'x',
      runtimes: ['nodejs20.x'],
      pool: { minIdle: 0, maxSandboxes: 4, sandboxesPerExecutor: 4, idleTtlMs: 1000, maxLifetimeMs: 600_000 },
    };
    expect((await k.call('POST', '/api/v1/templates', t)).status).toBe(201);
    const res = await run(fresh(), 'reap');
    expect(res.body.startType).toBe('cold');
    const [id] = await sandboxes('reap');
    expect(id).toBeDefined();
    expect(await k.redis.hget(`${k.prefix}:sbx:${id}`, 'state')).toBe('idle');
    await until('the idle instance to be reaped', async () => (await sandboxes('reap')).length === 0, 10_000);
    await until('the empty executor to stop', async () => (await k.redis.zcard(`${k.prefix}:exes:reap`)) === 0, 10_000);
    // The next request starts from scratch.
    expect((await run(fresh(), 'reap')).body.status).toBe('succeeded');
  });

  it('retires idle sandboxes past maxLifetimeMs and keeps the pool at minIdle', async () => {
    const t = {
      name: 'life',
      image: 'x',
      runtimes: ['nodejs20.x'],
      pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4, idleTtlMs: 600_000, maxLifetimeMs: 2000 },
    };
    expect((await k.call('POST', '/api/v1/templates', t)).status).toBe(201);
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
    const t = {
      name: 'race',
      image: 'x',
      runtimes: ['nodejs20.x'],
      pool: { minIdle: 2, maxSandboxes: 4, sandboxesPerExecutor: 4, idleTtlMs: 1000, maxLifetimeMs: 1000 },
    };
    expect((await k.call('POST', '/api/v1/templates', t)).status).toBe(201);
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
