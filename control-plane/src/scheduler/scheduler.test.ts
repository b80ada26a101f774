import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ExecutorHandle } from '../platforms/platform.js';
import type { Template } from '../templates/template.js';
import { SandboxRecords } from './records.js';
import { Scheduler, type SchedulerAgents } from './scheduler.js';
import { PoolSignals, type ExecutorLoss } from './signals.js';
import { fakeExecutor, testRedis } from './test-redis.js';

const template = {
  name: 'nodejs',
  runtimes: ['nodejs'],
  resources: { memoryMB: 128, diskMB: 64, maxProcesses: 32, maxOpenFiles: 256, cpu: 1 },
  pool: { minIdle: 0, maxSandboxes: 8, sandboxesPerExecutor: 4, idleTtlMs: 60_000, maxLifetimeMs: 3_600_000 },
  network: { outbound: false },
} as unknown as Template;

const grpcError = (code: status) => Object.assign(new Error(`grpc ${code}`), { code, details: '', metadata: undefined });

/**
 * Executors that live in memory: each either answers (and counts the calls it got) or is dead
 * (every call fails like a connection refused), or slow (createSandbox times out, health answers).
 */
class FakeExecutors implements SchedulerAgents {
  readonly calls = new Map<string, number>();
  readonly dead = new Set<string>();
  readonly slow = new Set<string>();

  get(executor: ExecutorHandle) {
    const count = () => this.calls.set(executor.id, (this.calls.get(executor.id) ?? 0) + 1);
    const fail = () => (this.dead.has(executor.id) ? Promise.reject(grpcError(status.UNAVAILABLE)) : undefined);
    return {
      createSandbox: async () => {
        count();
        await fail();
        if (this.slow.has(executor.id)) throw grpcError(status.DEADLINE_EXCEEDED);
        return {} as never;
      },
      destroySandbox: async () => {
        await fail();
        return true;
      },
      health: async () => {
        await fail();
        return {} as never;
      },
    };
  }
}

describe('Scheduler with fake executors (real Redis)', () => {
  let ctx: ReturnType<typeof testRedis>;
  let records: SandboxRecords;
  let agents: FakeExecutors;
  let signals: PoolSignals;
  let losses: ExecutorLoss[];
  let demand: number;
  let scheduler: Scheduler;
  beforeEach(() => {
    ctx = testRedis();
    records = new SandboxRecords(ctx.redis, ctx.keys);
    agents = new FakeExecutors();
    signals = new PoolSignals();
    losses = [];
    demand = 0;
    signals.onExecutorLost((l) => void losses.push(l));
    signals.onDemand(() => void demand++);
    scheduler = new Scheduler(records, agents, signals);
  });
  afterEach(async () => {
    await ctx.cleanup();
  });

  it('starts cold, then reuses the sandbox hot for the same function and warm for another', async () => {
    await records.addExecutor(fakeExecutor('exe-a'));
    const cold = await scheduler.acquire(template, 'nodejs', 'fn1', 100, 10_000);
    expect(cold.startType).toBe('cold');
    await scheduler.release(cold, 'fn1');
    const hot = await scheduler.acquire(template, 'nodejs', 'fn1', 100, 10_000);
    expect({ startType: hot.startType, same: hot.sandboxId === cold.sandboxId }).toEqual({ startType: 'hot', same: true });
    await scheduler.release(hot, '');
    expect((await scheduler.acquire(template, 'nodejs', 'fn2', 100, 10_000)).startType).toBe('warm');
  });

  it('drops a dead executor at its first failed boot, signals it once, and places the work elsewhere (defect 6)', async () => {
    await records.addExecutor(fakeExecutor('exe-dead'));
    await records.addExecutor(fakeExecutor('exe-live'));
    // The dead one holds warm sandboxes (booted before it died) and is the least loaded.
    const booted = await scheduler.createSandbox(template, 'nodejs', 'keeper');
    await scheduler.release(booted!, '');
    const [deadId, liveId] = booted!.executor.id === 'exe-dead' ? ['exe-dead', 'exe-live'] : ['exe-live', 'exe-dead'];
    agents.dead.add(deadId);
    // Many callers at once, each needing a new sandbox (a function with no instance).
    const leases = await Promise.all(Array.from({ length: 3 }, (_, i) => scheduler.acquire(template, 'nodejs', `fn${i}`, 2000, 10_000)));
    const placed = leases.filter((l) => l.startType === 'cold').map((l) => l.executor.id);
    expect(new Set(placed)).toEqual(new Set([liveId]));
    // Its boots failed a handful of times at most (the callers that raced the drop), not per retry.
    expect(agents.calls.get(deadId) ?? 0).toBeLessThanOrEqual(3);
    expect(losses.map((l) => l.executorId)).toEqual([deadId]);
    expect(await records.executorIds('nodejs')).toEqual([liveId]);
    expect((await records.snapshot('nodejs')).some((r) => r.executor === deadId)).toBe(false);
  });

  it('keeps an executor that is slow to boot but answers its probe', async () => {
    await records.addExecutor(fakeExecutor('exe-slow'));
    agents.slow.add('exe-slow');
    await expect(scheduler.acquire(template, 'nodejs', 'fn1', 50, 10_000)).rejects.toMatchObject({ code: 'NoCapacity' });
    expect(losses).toEqual([]);
    expect(await records.executorIds('nodejs')).toEqual(['exe-slow']);
    expect(demand).toBeGreaterThan(0);
  });

  it('drops the executor when destroying a sandbox shows it is gone', async () => {
    await records.addExecutor(fakeExecutor('exe-a'));
    const lease = await scheduler.acquire(template, 'nodejs', 'fn1', 100, 10_000);
    agents.dead.add('exe-a');
    await scheduler.destroy(lease);
    expect(losses).toHaveLength(1);
    expect(await records.executorIds('nodejs')).toEqual([]);
  });
});
