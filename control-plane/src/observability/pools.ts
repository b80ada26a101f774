import type { AgentPool } from '../agent/client.js';
import type { LeaseCache } from '../scheduler/lease-cache.js';
import type { SandboxRecords } from '../scheduler/records.js';
import type { TemplateRegistry } from '../templates/registry.js';
import type { StartHistogram, StartLatency } from './start-latency.js';

export interface PoolView {
  template: string;
  /** Sandboxes by state, as kiln_pool_sandboxes counts them (metrics/kiln.ts). */
  sandboxes: { idleWarm: number; idleHot: number; busy: number; booting: number; reaping: number };
  executors: number;
  /** Per start type: invocations started and how long starting took. */
  starts: Record<'hot' | 'warm' | 'cold', StartHistogram>;
  /** Administrators only: each executor's id and what its agent says. */
  executorDetail?: Array<{ id: string; ok: boolean; sandboxes?: number; maxSandboxes?: number; uptimeMs?: number; error?: string }>;
}

/**
 * The pools' live state per template: sandbox states from the scheduler's records (the same
 * count /metrics exports), start counts and histograms from StartLatency, and for
 * administrators each executor's own report. Read-only; the scheduler owns every key it reads.
 */
export class PoolsView {
  constructor(
    private readonly records: Pick<SandboxRecords, 'snapshot' | 'executorIds' | 'executor'>,
    private readonly templates: TemplateRegistry,
    private readonly leases: Pick<LeaseCache, 'holds'>,
    private readonly starts: StartLatency,
    private readonly agents: AgentPool,
  ) {}

  async list(detail: boolean): Promise<PoolView[]> {
    return Promise.all(this.templates.names().map((t) => this.one(t, detail)));
  }

  private async one(template: string, detail: boolean): Promise<PoolView> {
    const [sandboxes, executorIds, starts] = await Promise.all([this.records.snapshot(template), this.records.executorIds(template), this.starts.histograms(template)]);
    const by = { idleWarm: 0, idleHot: 0, busy: 0, booting: 0, reaping: 0 };
    for (const r of sandboxes) {
      if (r.state === 'idle') by[r.fn ? 'idleHot' : 'idleWarm']++;
      // Leased but only parked on this replica's lease cache: idle for every purpose but its key.
      else if (r.state === 'busy' && this.leases.holds(r.id)) by.idleHot++;
      else if (r.state === 'busy' || r.state === 'booting' || r.state === 'reaping') by[r.state]++;
    }
    const view: PoolView = { template, sandboxes: by, executors: executorIds.length, starts };
    if (detail) {
      view.executorDetail = await Promise.all(
        executorIds.map(async (id) => {
          const handle = await this.records.executor(id);
          if (!handle) return { id, ok: false, error: 'no record' };
          try {
            const h = await this.agents.get(handle).health(1500);
            return { id, ok: true, sandboxes: h.sandboxes, maxSandboxes: h.maxSandboxes, uptimeMs: h.uptimeMs };
          } catch (err) {
            return { id, ok: false, error: (err as Error).message };
          }
        }),
      );
    }
    return view;
  }
}
