import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { removeDataDir, startKilnProcess, startTestKiln, testDirs, type KilnProcess, type TestKiln } from '../support/kiln.js';

const until = async (what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

/** The pids of this deployment's executors, from the local platform's state files. */
const executorPids = (dataDir: string): Array<{ id: string; pid: number }> =>
  readdirSync(join(dataDir, 'executors'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dataDir, 'executors', f), 'utf8')) as { id: string; pid: number });

describe('an executor killed mid-invocation', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({
      templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null },
    });
  });
  afterAll(async () => {
    await k?.stop();
  });

  const slow = (tag: string): string => `exports.handler = () => new Promise((r) => setTimeout(() => r(${JSON.stringify(tag)}), 1500))`;
  const killExecutor = (): string => {
    const [exe] = executorPids(k.dataDir);
    if (!exe) throw new Error('no executor running');
    process.kill(exe.pid, 'SIGKILL');
    return exe.id;
  };
  const poolBack = (dead: string) => async () => {
    const ids = await k.redis.zrange(`${k.prefix}:exes:nodejs`, 0, -1);
    return ids.length === 1 && ids[0] !== dead && (await k.redis.llen(`${k.prefix}:warm:nodejs:nodejs`)) === 1;
  };

  it('fails a sync invocation with ExecutorLost, and the pool is rebuilt on a new executor', async () => {
    const pending = k.call('POST', '/api/v1/executions', { code: slow('sync'), language: 'nodejs', timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 500));
    const dead = killExecutor();
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('failed');
    expect(res.body.error.errorType).toBe('Kiln.ExecutorLost');
    expect(res.body.error.errorMessage).toContain(dead);
    await until('a new executor with minIdle warm sandboxes', poolBack(dead));
    const after = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => "alive"', language: 'nodejs' });
    expect(after.body.result).toBe('alive');
    await until('minIdle to be refilled', async () => (await k.redis.smembers(`${k.prefix}:sbxs:nodejs`)).length === 2);
  });

  it('retries an async invocation on a new executor', async () => {
    const job = await k.call('POST', '/api/v1/executions', { code: slow('async'), language: 'nodejs', timeoutMs: 10_000, wait: false });
    await until('the job to run', async () => (await k.call('GET', `/api/v1/executions/${job.body.id}`)).body.status === 'running');
    await new Promise((r) => setTimeout(r, 300));
    const dead = killExecutor();
    await until(
      'the retried job to finish',
      async () => !['queued', 'running'].includes((await k.call('GET', `/api/v1/executions/${job.body.id}`)).body.status),
    );
    expect((await k.call('GET', `/api/v1/executions/${job.body.id}`)).body.status).toBe('succeeded');
    expect((await k.call('GET', `/api/v1/executions/${job.body.id}`)).body.result).toBe('async');
    await until('the pool to be rebuilt', poolBack(dead));
  });
});

describe('a control plane killed (SIGKILL) while jobs are queued', () => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const dirs = testDirs({ nodejs: { pool: { minIdle: 1, maxSandboxes: 2, sandboxesPerExecutor: 2 } }, python: null, shell: null, provided: null });
  const env = {
    KILN_REDIS_URL: `unix://${inject('redisSocket')}`,
    KILN_REDIS_PREFIX: prefix,
    KILN_DATA_DIR: dirs.dataDir,
    KILN_TEMPLATES_DIR: dirs.templatesDir,
    KILN_STOP_EXECUTORS_ON_EXIT: 'true',
  };
  const redis = new Redis({ path: inject('redisSocket') });
  let cp: KilnProcess | undefined;
  afterAll(async () => {
    await cp?.kill('SIGTERM');
    for (const e of executorPids(dirs.dataDir)) {
      try {
        process.kill(e.pid, 'SIGKILL');
      } catch {
        // already stopped by the control plane
      }
    }
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await removeDataDir(dirs.dataDir);
  });

  it('loses none of them: all finish after a restart', { timeout: 90_000 }, async () => {
    cp = await startKilnProcess(env);
    const submit = async (i: number): Promise<string> => {
      const res = await fetch(`${cp?.url}/api/v1/executions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          code: 'exports.handler = (e) => new Promise((r) => setTimeout(() => r(e.i), 400))',
          language: 'nodejs',
          event: { i },
          wait: false,
        }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as { id: string }).id;
    };
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await submit(i));
    const status = async (id: string): Promise<{ status: string; result?: unknown }> =>
      (await (await fetch(`${cp?.url}/api/v1/executions/${id}`)).json()) as { status: string; result?: unknown };
    await until('a job to run', async () => (await Promise.all(ids.map(status))).some((s) => s.status === 'running'), 20_000);
    await cp.kill('SIGKILL');
    cp = await startKilnProcess(env);
    await until('every job to finish after the restart', async () => (await Promise.all(ids.map(status))).every((s) => s.status === 'succeeded'), 60_000);
    expect((await Promise.all(ids.map(status))).map((s) => s.result)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });
});
