import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { Kiln } from '@kiln/control-plane/server';
import { testDirs } from '../support/kiln.js';
import { alive, call, executorPids, removeDeployment, startReplica, until } from '../support/faults.js';

/**
 * Two control-plane replicas of one deployment (one Redis prefix, one state directory), with the
 * default KILN_STOP_EXECUTORS_ON_EXIT=true. A graceful stop of one leaves the executors to the
 * other (its session and calls go on); the last one to stop stops them all.
 */
describe('two replicas on one Redis, one stopping', () => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const dirs = testDirs({ nodejs: { pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null });
  const redis = new Redis({ path: inject('redisSocket') });
  let a: Kiln | undefined;
  let b: Kiln | undefined;
  afterAll(async () => {
    await removeDeployment(prefix, dirs, redis, async () => {
      await a?.stop();
      await b?.stop();
    });
  });

  it('leaves the executors to the replica still running, and the last one stops them', { timeout: 60_000 }, async () => {
    a = await startReplica(prefix, dirs);
    b = await startReplica(prefix, dirs);
    const session = await call(b.url, 'POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(session.status, JSON.stringify(session.body)).toBe(201);
    const id = session.body.id as string;
    const executors = executorPids(dirs.dataDir);
    expect(executors.length).toBeGreaterThan(0);
    // A call in flight on B while A stops.
    const inFlight = call(b.url, 'POST', '/api/v1/executions', {
      code: 'exports.handler = () => new Promise((r) => setTimeout(() => r("done"), 1500))',
      language: 'nodejs',
      timeoutMs: 10_000,
    });
    await new Promise((r) => setTimeout(r, 300));

    await a.stop();
    a = undefined;
    expect(
      executors.filter((e) => !alive(e.pid)).map((e) => e.id),
      'executors stopped by the replica that left',
    ).toEqual([]);
    const res = await inFlight;
    expect(res.body.status, JSON.stringify(res.body)).toBe('succeeded');
    const run = await call(b.url, 'POST', `/api/v1/sessions/${id}/process/run`, { command: 'echo', args: ['still here'] });
    expect(run.body.stdout, JSON.stringify(run.body)).toBe('still here\n');
    expect((await call(b.url, 'GET', `/api/v1/sessions/${id}`)).body.status).toBe('running');

    // B is the last one: its stop takes every executor down and leaves no record behind.
    await b.stop();
    b = undefined;
    await until('every executor to be stopped', () => executorPids(dirs.dataDir).every((e) => !alive(e.pid)), 15_000);
    expect(await redis.zcard(`${prefix}:exes:nodejs`)).toBe(0);
    expect(await redis.llen(`${prefix}:warm:nodejs:nodejs`)).toBe(0);
    expect(await redis.scard(`${prefix}:sbxs:nodejs`)).toBe(0);
  });
});
