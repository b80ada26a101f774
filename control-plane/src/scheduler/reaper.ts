import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { Platform } from '../platforms/platform.js';
import type { Template } from '../templates/template.js';
import type { SandboxRecord, SandboxRecords } from './records.js';
import type { Scheduler } from './scheduler.js';

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
  /** When each executor was first seen empty (per replica; a replica that just took over waits a full TTL). */
  private readonly emptySince = new Map<string, number>();

  constructor(
    private readonly records: SandboxRecords,
    private readonly agents: AgentPool,
    private readonly runtime: Platform,
    private readonly scheduler: Scheduler,
  ) {}

  async reap(template: Template, now = Date.now()): Promise<ReapCounts> {
    const counts: ReapCounts = { idle: 0, lifetime: 0, leases: 0, executors: 0 };
    const records = await this.records.snapshot(template.name);
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
        const ex = await this.records.reclaim(r.id, now);
        if (ex === undefined) continue;
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
    const ex = await this.records.reap(r, lastUsedBefore, createdBefore);
    if (ex === undefined) return false;
    await this.finish(r, ex);
    return true;
  }

  /**
   * Kills a sandbox taken out of service, then frees its slot. A failed kill is logged and the
   * slot freed anyway; one that shows the executor gone drops it (Scheduler.destroy).
   */
  private async finish(r: SandboxRecord, executorId: string): Promise<void> {
    const executor = await this.records.executor(executorId);
    if (executor) await this.scheduler.destroy({ template: r.template, sandboxId: r.id, executor });
    else await this.scheduler.forget(r.template, r.id);
  }

  private async retireEmptyExecutors(template: Template, now: number): Promise<number> {
    let retired = 0;
    for (const { id, sandboxes } of await this.records.executorLoad(template.name)) {
      if (sandboxes > 0) {
        this.emptySince.delete(id);
        continue;
      }
      const since = this.emptySince.get(id) ?? now;
      this.emptySince.set(id, since);
      if (now - since < template.pool.idleTtlMs) continue;
      // Out of placement first (only if still empty), so no sandbox is reserved on it while it stops.
      if (!(await this.records.retireEmpty(template.name, id))) continue;
      this.emptySince.delete(id);
      log('info', 'stopping idle executor', { template: template.name, executorId: id });
      await this.runtime.stop(id).catch((err: unknown) => log('warn', 'could not stop executor', { executorId: id, error: String(err) }));
      await this.records.removeExecutor({ id, template: template.name });
      this.agents.drop(id);
      retired++;
    }
    return retired;
  }
}
