import { randomUUID } from 'node:crypto';
import type { VolumeMount } from '@kiln/proto/executor/sandboxes';
import { isExecutorGone, type Agent } from '../agent/client.js';
import { ExecutorCallError, ExecutorFullError } from '../agent/errors.js';
import { NoCapacityError } from '../errors.js';
import { throughRedisOutage } from '../redis/outage.js';
import { log } from '../log.js';
import type { ExecutorHandle } from '../platforms/platform.js';
import { networkPolicy } from '../templates/network.js';
import type { Template } from '../templates/template.js';
import type { SandboxRecords } from './records.js';
import type { PoolSignals } from './signals.js';

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

/** The agent calls the scheduler makes; an AgentPool, or fake executors in tests. */
export interface SchedulerAgents {
  get(executor: ExecutorHandle): Pick<Agent, 'createSandbox' | 'destroySandbox' | 'health'>;
}

/**
 * How long an executor that just failed an RPC has to answer a health probe before it is
 * dropped as gone. Short: it answers in a millisecond when alive.
 */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Places work on sandboxes: hot (idle instance of the same function) → warm (pre-booted idle
 * sandbox) → cold (new sandbox on the least-loaded executor with room) → wait. All state is
 * in Redis; this class holds none, so any number of replicas can use it at once.
 */
/** Boots one acquire tries again after SandboxBootFailed before it gives up (acquire). */
const BOOT_RETRIES = 1;

/** How long a boot's bookkeeping waits for Redis to come back. */
const REDIS_OUTAGE_MS = 30_000;

export class Scheduler {
  private readonly replica = randomUUID().slice(0, 8);
  private seq = 0;

  constructor(
    private readonly records: SandboxRecords,
    private readonly agents: SchedulerAgents,
    private readonly signals: PoolSignals,
  ) {}

  /**
   * Leases a sandbox for `functionKey`, waiting up to `waitMs` for one to free up. The lease
   * lasts `leaseMs` in Redis terms; the pool keeper reclaims leases whose owner vanished.
   * With `volumes`, only a sandbox booted for this caller will do (acquireFresh).
   * `makeRoom` is asked once the pool is full and nothing idle can be evicted (sessions:
   * hibernate a paused one, make-room.ts); true means a slot was given back, so try again.
   */
  async acquire(template: Template, runner: string, functionKey: string, waitMs: number, leaseMs: number, volumes: VolumeMount[] = [], makeRoom?: (template: string) => Promise<boolean>): Promise<Lease> {
    const deadline = Date.now() + waitMs;
    let pause = 1;
    let bootFailures = 0;
    for (;;) {
      const owner = `${this.replica}:${++this.seq}`;
      const now = Date.now();
      const hit = volumes.length > 0 ? undefined : await this.records.acquire(template.name, runner, functionKey, owner, now, leaseMs);
      if (hit) {
        const executor = await this.records.executor(hit.executorId);
        if (executor) return { sandboxId: hit.sandboxId, executor, template: template.name, runner, startType: hit.startType, owner, leaseUntil: now + leaseMs };
        await this.forget(template.name, hit.sandboxId);
        continue;
      }
      let cold: Lease | undefined;
      try {
        cold = await this.createSandbox(template, runner, owner, leaseMs, false, volumes);
      } catch (err) {
        // A sandbox that failed to boot is the host's fault, not the caller's, and is seldom
        // repeated (seen under load: bwrap's netlink setup of the sandbox's loopback): another
        // boot is tried before the caller hears of it, once, so a host where every boot fails
        // still answers at once instead of looping until the deadline.
        if (!(err instanceof ExecutorCallError && err.code === 'SandboxBootFailed') || ++bootFailures > BOOT_RETRIES) throw err;
        continue;
      }
      if (cold) return cold;
      // Full, but some other function's instance sits idle: it makes room (least recently used first).
      if (await this.evictIdle(template)) continue;
      if (makeRoom && (await makeRoom(template.name))) continue;
      // Before the deadline check: a caller that gives up still tells the keeper it wanted room.
      this.signals.wantCapacity(template);
      if (Date.now() >= deadline) throw new NoCapacityError(template.name, waitMs);
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, 50);
    }
  }

  /**
   * Leases a sandbox booted for this caller (never a warm or hot one), with `volumes` bound at
   * its boot: warm sandboxes were booted before anyone knew which volumes they would need, and a
   * running sandbox's mounts are not changed. Waits for room like acquire.
   */
  acquireFresh(template: Template, runner: string, volumes: VolumeMount[], waitMs: number, leaseMs: number, makeRoom?: (template: string) => Promise<boolean>): Promise<Lease> {
    return this.acquire(template, runner, '', waitMs, leaseMs, volumes, makeRoom);
  }

  /** Returns a sandbox to the idle lists, as an instance of `functionKey` (or warm if empty). */
  async release(lease: Lease, functionKey: string): Promise<void> {
    await this.records.release(lease, functionKey);
  }

  /** Drops a sandbox's record and frees its executor slot (the sandbox is gone or being destroyed). */
  async forget(template: string, sandboxId: string): Promise<void> {
    await this.records.forget(template, sandboxId);
  }

  /**
   * Asks its executor to kill the sandbox, then forgets it. In that order: the slot is given
   * back only once the executor has room again. A failure is logged, not thrown; one that shows
   * the executor is gone drops it from scheduling (`executorFailed`).
   */
  async destroy(lease: Pick<Lease, 'template' | 'sandboxId' | 'executor'>): Promise<void> {
    try {
      await this.agents.get(lease.executor).destroySandbox(lease.sandboxId);
    } catch (err) {
      if (!(await this.executorFailed(lease.template, lease.executor, err))) log('warn', 'could not destroy sandbox', { sandboxId: lease.sandboxId, error: String(err) });
    }
    await this.forget(lease.template, lease.sandboxId);
  }

  /**
   * Called when an RPC to an executor failed. If the failure says it may be gone and it does not
   * answer a short probe either, it is dropped from scheduling at once: out of placement, every
   * sandbox record it held forgotten (no acquire hands one out, no reserve places one there), and
   * the loss signalled (the keeper stops it and releases its files, sessions on it become lost).
   * Logged once, by the replica that dropped it. True when the executor is gone.
   */
  async executorFailed(template: string, executor: ExecutorHandle, err: unknown, reason = 'executor exited'): Promise<boolean> {
    if (!isExecutorGone(err)) return false;
    try {
      await this.agents.get(executor).health(PROBE_TIMEOUT_MS);
      return false;
    } catch {
      // No answer twice: gone (the probe's own error says no more than the first one).
    }
    await this.executorGone(template, executor.id, reason, err instanceof Error ? err : String(err));
    return true;
  }

  /** Drops an executor known to be gone from scheduling and signals its loss (see executorFailed). */
  async executorGone(template: string, executorId: string, reason: string, cause?: Error | string): Promise<void> {
    const { dropped, forgotten } = await this.records.dropExecutor(template, executorId);
    if (!dropped) return;
    log('warn', 'executor lost; dropped from scheduling with its sandboxes', { template, executorId, reason, sandboxes: forgotten.length, ...(cause ? { error: String(cause) } : {}) });
    this.signals.executorLost({ template, executorId, reason, sandboxIds: forgotten });
  }

  /**
   * Boots a new sandbox on the least-loaded executor with room and leases it to `owner`.
   * Returns undefined when no executor has room (the caller waits or asks for capacity).
   * `leaseMs` bounds the lease like acquire's, so the keeper can reclaim it if the owner dies.
   * `aheadOfTime`: nobody waits for this boot (the keeper's warm pool), so it leaves the
   * executor's spare workspaces to the boots a request waits for.
   */
  async createSandbox(template: Template, runner: string, owner: string, leaseMs = 60_000, aheadOfTime = false, volumes: VolumeMount[] = []): Promise<Lease | undefined> {
    const sandboxId = `sbx-${randomUUID()}`;
    const executorId = await this.records.reserve(template, runner, sandboxId, owner, Date.now());
    if (!executorId) return undefined;
    // From here a record says "booting": each Redis step outlasts a short outage (throughRedisOutage), or
    // the record would hold a slot of the template, booting for nobody, until BOOT_LIMIT_MS.
    const redisBack = Date.now() + REDIS_OUTAGE_MS;
    const executor = await throughRedisOutage(() => this.records.executor(executorId), redisBack);
    if (!executor) {
      await throughRedisOutage(() => this.forget(template.name, sandboxId), redisBack);
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
        aheadOfTime,
        egressPolicyJson: network.egress ? JSON.stringify(network.egress) : '',
        prestartContexts: template.interpreter?.prestart ?? [],
        volumes,
      });
    } catch (err) {
      await throughRedisOutage(() => this.forget(template.name, sandboxId), redisBack);
      // A dead executor is dropped here, once (its other records too), so the retries that
      // follow go elsewhere instead of failing on it again; the keeper replaces it.
      if (await this.executorFailed(template.name, executor, err)) return undefined;
      log('warn', 'sandbox boot failed', { template: template.name, executorId, error: String(err) });
      // Slow to answer but alive, or fuller than Redis thinks (a sandbox being destroyed): "no
      // room right now", the caller waits and retries.
      if (isExecutorGone(err) || err instanceof ExecutorFullError) return undefined;
      throw err;
    }
    const leaseUntil = Date.now() + leaseMs;
    if (!(await throughRedisOutage(() => this.records.booted(sandboxId, owner, leaseUntil), Date.now() + REDIS_OUTAGE_MS))) {
      // Forgotten while it booted (its executor was dropped): not ours to hand out.
      await this.agents
        .get(executor)
        .destroySandbox(sandboxId)
        .catch((err: unknown) => log('debug', 'could not destroy a sandbox whose record went while it booted', { sandboxId, error: String(err) }));
      return undefined;
    }
    return { sandboxId, executor, template: template.name, runner, startType: 'cold', owner, leaseUntil };
  }

  /**
   * Destroys the least recently used idle instance of the template that has been idle for at
   * least `idleForMs`; false when there is none.
   */
  async evictIdle(template: Template, idleForMs = 0): Promise<boolean> {
    const now = Date.now();
    const hit = await this.records.evict(template.name, now, now - idleForMs + 1);
    if (!hit) return false;
    const executor = await this.records.executor(hit.executorId);
    if (executor) await this.destroy({ template: template.name, sandboxId: hit.sandboxId, executor });
    else await this.forget(template.name, hit.sandboxId);
    return true;
  }

  /** Number of warm (idle, no function) sandboxes of a template for one runner (stale list entries not counted). */
  warmCount(template: string, runner: string): Promise<number> {
    return this.records.warmCount(template, runner);
  }
}

