import type { Redis } from 'ioredis';
import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { Runtime } from '../runtimes/runtime.js';
import type { ExecutorStore } from '../store/executors.js';
import type { Keys } from '../store/keys.js';
import type { Template } from '../templates/template.js';
import { schedulerRedis, type SchedulerRedis } from './commands.js';
import { idleList, readSandboxes, type SandboxRecord } from './records.js';
import type { Scheduler } from './scheduler.js';

/** A sandbox stuck in `booting` longer than this was left by a control plane that died. */
const BOOT_LIMIT_MS = 60_000;
/** A sandbox being reaped is retried by any replica if its reaper did not finish in this time. */
const REAP_LEASE_MS = 60_000;

export interface ReapCounts {
  idle: number;
  lifetime: number;
  leases: number;
  executors: number;
}

/**
 * Shrinks pools back: idle instances and surplus warm sandboxes past `idleTtlMs`, idle
 * sandboxes past `maxLifetimeMs`, leases whose owner vanished, and executors that held no
 * sandbox for `idleTtlMs`. Every removal is decided again inside a Lua script, so a sandbox
 * leased between the snapshot and the removal is left alone.
 */
export class Reaper {
  private readonly redis: SchedulerRedis;
  /** When each executor was first seen empty (per replica; a replica that just took over waits a full TTL). */
  private readonly emptySince = new Map<string, number>();

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly executors: ExecutorStore,
    private readonly agents: AgentPool,
    private readonly runtime: Runtime,
    private readonly scheduler: Scheduler,
  ) {
    this.redis = schedulerRedis(redis);
  }

  async reap(template: Template, now = Date.now()): Promise<ReapCounts> {
    const counts: ReapCounts = { idle: 0, lifetime: 0, leases: 0, executors: 0 };
    const records = await readSandboxes(this.redis, this.keys, template.name);
    // A sandbox made before the template's last change of shape (revisedAt) is as good as
    // expired: it goes as soon as it is idle, and the keeper boots its replacement.
    const lifetimeCut = Math.max(now - template.pool.maxLifetimeMs, template.revisedAt ?? 0);
    const idleCut = now - template.pool.idleTtlMs;
    // Warm sandboxes up to minIdle per runner are the pool itself: only their lifetime ends them.
    const keepWarm = new Set<string>();
    const warmByRunner = new Map<string, SandboxRecord[]>();
    for (const r of records) {
      if (r.state !== 'idle' || r.fn || r.createdAt < lifetimeCut) continue;
      const list = warmByRunner.get(r.runner) ?? [];
      list.push(r);
      warmByRunner.set(r.runner, list);
    }
    for (const list of warmByRunner.values()) {
      list.sort((a, b) => b.lastUsed - a.lastUsed);
      for (const r of list.slice(0, template.pool.minIdle)) keepWarm.add(r.id);
    }
    for (const r of records) {
      if (r.state === 'idle') {
        const expired = r.createdAt < lifetimeCut;
        if (!expired && (keepWarm.has(r.id) || r.lastUsed >= idleCut)) continue;
        if (!(await this.reapIdle(r, expired ? Number.MAX_SAFE_INTEGER : idleCut, lifetimeCut))) continue;
        if (expired) counts.lifetime++;
        else counts.idle++;
      } else {
        const ex = await this.redis.kilnReclaim(this.keys.sandbox(r.id), now, now - BOOT_LIMIT_MS, REAP_LEASE_MS);
        if (ex === null) continue;
        counts.leases++;
        log('info', 'reclaimed an abandoned lease', { template: template.name, sandboxId: r.id, state: r.state });
        await this.finish(r, ex);
      }
    }
    counts.executors = await this.retireEmptyExecutors(template, now);
    if (counts.idle + counts.lifetime + counts.leases + counts.executors > 0) log('debug', 'reaped', { template: template.name, ...counts });
    return counts;
  }

  /** Reaps one idle sandbox if it is still idle and past a cutoff; false when it was leased meanwhile. */
  async reapIdle(r: SandboxRecord, lastUsedBefore: number, createdBefore: number): Promise<boolean> {
    const ex = await this.redis.kilnReap(this.keys.sandbox(r.id), idleList(this.keys, r), r.id, r.fn, lastUsedBefore, createdBefore, Date.now(), REAP_LEASE_MS);
    if (ex === null) return false;
    await this.finish(r, ex);
    return true;
  }

  /**
   * Kills a sandbox taken out of service, then frees its slot. A failed kill is logged and the
   * slot freed anyway: the executor is gone or the health check will find it.
   */
  private async finish(r: SandboxRecord, executorId: string): Promise<void> {
    const handle = await this.executors.get(executorId);
    if (handle) {
      await this.agents
        .get(handle)
        .destroySandbox(r.id)
        .catch((err: unknown) => log('warn', 'could not destroy a reaped sandbox', { sandboxId: r.id, executorId, error: String(err) }));
    }
    await this.scheduler.forget(r.template, r.id);
  }

  private async retireEmptyExecutors(template: Template, now: number): Promise<number> {
    let retired = 0;
    for (const { id, sandboxes } of await this.executors.load(template.name)) {
      if (sandboxes > 0) {
        this.emptySince.delete(id);
        continue;
      }
      const since = this.emptySince.get(id) ?? now;
      this.emptySince.set(id, since);
      if (now - since < template.pool.idleTtlMs) continue;
      // Out of placement first (only if still empty), so no sandbox is reserved on it while it stops.
      if ((await this.redis.kilnRetireEmpty(this.keys.executors(template.name), id)) !== 1) continue;
      this.emptySince.delete(id);
      log('info', 'stopping idle executor', { template: template.name, executorId: id });
      await this.runtime.stop(id).catch((err: unknown) => log('warn', 'could not stop executor', { executorId: id, error: String(err) }));
      await this.executors.remove({ id, template: template.name });
      this.agents.drop(id);
      retired++;
    }
    return retired;
  }
}
