import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isExecutorGone, type AgentPool } from '../agent/client.js';
import { ExecutorFullError } from '../agent/errors.js';
import { NoCapacityError } from '../errors.js';
import { log } from '../log.js';
import type { ExecutorHandle } from '../runtimes/runtime.js';
import type { ExecutorStore } from '../store/executors.js';
import type { Keys } from '../store/keys.js';
import { networkPolicy } from '../templates/network.js';
import type { Template } from '../templates/template.js';
import { schedulerRedis, type SchedulerRedis } from './commands.js';

export type StartType = 'hot' | 'warm' | 'cold';

/** Exclusive use of one sandbox until released or forgotten. */
export interface Lease {
  sandboxId: string;
  executor: ExecutorHandle;
  template: string;
  runner: string;
  startType: StartType;
  /** Unique per lease, so a late release of an old lease cannot free someone else's. */
  owner: string;
  /** When the lease runs out in Redis (ms since the epoch); the keeper may reclaim it after. */
  leaseUntil: number;
}

/** Called when a template needs more executors than it has; the pool keeper starts them. */
export type CapacityWanted = (template: Template) => void;

/**
 * Places work on sandboxes: hot (idle instance of the same function) → warm (pre-booted idle
 * sandbox) → cold (new sandbox on the least-loaded executor with room) → wait. All state is
 * in Redis; this class holds none, so any number of replicas can use it at once.
 */
export class Scheduler {
  private readonly redis: SchedulerRedis;
  private readonly replica = randomUUID().slice(0, 8);
  private seq = 0;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly executors: ExecutorStore,
    private readonly agents: AgentPool,
    private readonly wantCapacity: CapacityWanted,
  ) {
    this.redis = schedulerRedis(redis);
  }

  /**
   * Leases a sandbox for `functionKey`, waiting up to `waitMs` for one to free up. The lease
   * lasts `leaseMs` in Redis terms; the pool keeper reclaims leases whose owner vanished.
   */
  async acquire(template: Template, runner: string, functionKey: string, waitMs: number, leaseMs: number): Promise<Lease> {
    const deadline = Date.now() + waitMs;
    let pause = 1;
    for (;;) {
      const owner = `${this.replica}:${++this.seq}`;
      const now = Date.now();
      const hit = await this.redis.kilnAcquire(
        this.keys.hot(template.name, functionKey),
        this.keys.warm(template.name, runner),
        this.keys.prefix,
        owner,
        now,
        leaseMs,
      );
      if (hit) {
        const executor = await this.executors.get(hit[1]);
        if (executor) return { sandboxId: hit[0], executor, template: template.name, runner, startType: hit[2], owner, leaseUntil: now + leaseMs };
        await this.forget(template.name, hit[0]);
        continue;
      }
      const cold = await this.createSandbox(template, runner, owner, leaseMs);
      if (cold) return cold;
      // Full, but some other function's instance sits idle: it makes room (least recently used first).
      if (await this.evictIdle(template)) continue;
      if (Date.now() >= deadline) throw new NoCapacityError(template.name, waitMs);
      this.wantCapacity(template);
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 50);
    }
  }

  /** Returns a sandbox to the idle lists, as an instance of `functionKey` (or warm if empty). */
  async release(lease: Lease, functionKey: string): Promise<void> {
    const list = functionKey ? this.keys.hot(lease.template, functionKey) : this.keys.warm(lease.template, lease.runner);
    await this.redis.kilnRelease(this.keys.sandbox(lease.sandboxId), list, lease.owner, Date.now(), functionKey, lease.sandboxId);
  }

  /** Drops a sandbox's record and frees its executor slot (the sandbox is gone or being destroyed). */
  async forget(template: string, sandboxId: string): Promise<void> {
    await this.redis.kilnForget(this.keys.sandbox(sandboxId), this.keys.sandboxes(template), this.keys.executors(template), sandboxId);
  }

  /**
   * Asks its executor to kill the sandbox, then forgets it. In that order: the slot is given
   * back only once the executor has room again. Failures are logged, not thrown.
   */
  async destroy(lease: Pick<Lease, 'template' | 'sandboxId' | 'executor'>): Promise<void> {
    await this.agents
      .get(lease.executor)
      .destroySandbox(lease.sandboxId)
      .catch((err: unknown) => log('warn', 'could not destroy sandbox', { sandboxId: lease.sandboxId, error: String(err) }));
    await this.forget(lease.template, lease.sandboxId);
  }

  /**
   * Boots a new sandbox on the least-loaded executor with room and leases it to `owner`.
   * Returns undefined when no executor has room (the caller waits or asks for capacity).
   * `leaseMs` bounds the lease like acquire's, so the keeper can reclaim it if the owner dies.
   */
  async createSandbox(template: Template, runner: string, owner: string, leaseMs = 60_000): Promise<Lease | undefined> {
    const sandboxId = `sbx-${randomUUID()}`;
    const executorId = await this.redis.kilnReserve(
      this.keys.executors(template.name),
      this.keys.sandboxes(template.name),
      this.keys.sandbox(sandboxId),
      template.pool.sandboxesPerExecutor,
      template.pool.maxSandboxes,
      sandboxId,
      template.name,
      runner,
      owner,
      Date.now(),
    );
    if (!executorId) return undefined;
    const executor = await this.executors.get(executorId);
    if (!executor) {
      await this.forget(template.name, sandboxId);
      return undefined;
    }
    const network = networkPolicy(template.network);
    try {
      await this.agents.get(executor).createSandbox({
        sandboxId,
        runner,
        resources: {
          memoryMb: template.resources.memoryMB,
          diskMb: template.resources.diskMB,
          maxProcesses: template.resources.maxProcesses,
          maxOpenFiles: template.resources.maxOpenFiles,
          cpu: template.resources.cpu,
        },
        allowNetwork: network.outbound,
        allowCidrs: network.allowCidrs,
      });
    } catch (err) {
      await this.forget(template.name, sandboxId);
      log('warn', 'sandbox boot failed', { template: template.name, executorId, error: String(err) });
      // A dead executor (the keeper's health check replaces it) or one fuller than Redis
      // thinks (a sandbox being destroyed) is "no room right now": the caller waits and retries.
      if (isExecutorGone(err) || err instanceof ExecutorFullError) return undefined;
      throw err;
    }
    const leaseUntil = Date.now() + leaseMs;
    await this.redis.hset(this.keys.sandbox(sandboxId), 'state', 'busy', 'leaseUntil', leaseUntil);
    return { sandboxId, executor, template: template.name, runner, startType: 'cold', owner, leaseUntil };
  }

  /**
   * Destroys the least recently used idle instance of the template that has been idle for at
   * least `idleForMs`; false when there is none.
   */
  async evictIdle(template: Template, idleForMs = 0): Promise<boolean> {
    const now = Date.now();
    const hit = await this.redis.kilnEvict(this.keys.sandboxes(template.name), this.keys.prefix, template.name, now, 60_000, now - idleForMs + 1);
    if (!hit) return false;
    const executor = await this.executors.get(hit[1]);
    if (executor) await this.destroy({ template: template.name, sandboxId: hit[0], executor });
    else await this.forget(template.name, hit[0]);
    return true;
  }

  /** Number of warm (idle, no function) sandboxes of a template for one runner. */
  warmCount(template: string, runner: string): Promise<number> {
    return this.redis.llen(this.keys.warm(template, runner));
  }
}
