import type { AgentPool } from '../agent/client.js';
import type { SandboxRecords } from '../scheduler/records.js';
import { SessionLostError, SessionNotFoundError } from '../sessions/errors.js';
import type { SessionService } from '../sessions/service.js';
import type { Principal } from '../tenancy/principal.js';

/** What `GET /api/v1/sessions/{id}/metrics` answers: one sample of the sandbox's cgroup. */
export interface SessionUsage {
  sessionId: string;
  /** "cgroup-v1", "cgroup-v2", or "none" when the executor has no cgroups (then no figures). */
  source: string;
  /** Cumulative CPU time since the sandbox booted; a rate is the difference of two samples over `sampledAtMs`'s. */
  cpuUsageUs?: number;
  cpuLimitCores?: number;
  memoryBytes?: number;
  memoryLimitBytes?: number;
  memoryPeakBytes?: number;
  tasks?: number;
  sampledAtMs: number;
}

/**
 * Reads a session's sandbox usage from its executor (Sandboxes.Usage, the RPC pause/resume answer with). Unlike SessionService.open
 * it does not count as activity: a console polling the figures must not keep an idle session
 * alive. Ownership is checked first (another tenant's key gets 404 SessionNotFound).
 */
export class SessionUsageReader {
  constructor(
    private readonly sessions: SessionService,
    private readonly records: Pick<SandboxRecords, 'executor'>,
    private readonly agents: AgentPool,
  ) {}

  async sample(id: string, who: Principal): Promise<SessionUsage> {
    await this.sessions.get(id, who);
    const r = await this.sessions.store.get(id);
    if (!r) throw new SessionNotFoundError(id);
    if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
    const executor = await this.records.executor(r.executorId);
    if (!executor) throw new SessionLostError(id, 'executor exited');
    const u = await this.agents.get(executor).sandboxUsage(r.sandboxId);
    return {
      sessionId: id,
      source: u.source,
      ...(u.cpuUsageUs !== undefined ? { cpuUsageUs: u.cpuUsageUs } : {}),
      ...(u.cpuLimit !== undefined ? { cpuLimitCores: u.cpuLimit } : {}),
      ...(u.memoryBytes !== undefined ? { memoryBytes: u.memoryBytes } : {}),
      ...(u.memoryLimitBytes !== undefined ? { memoryLimitBytes: u.memoryLimitBytes } : {}),
      ...(u.memoryPeakBytes !== undefined ? { memoryPeakBytes: u.memoryPeakBytes } : {}),
      ...(u.tasks !== undefined ? { tasks: u.tasks } : {}),
      sampledAtMs: u.sampledAtMs,
    };
  }
}
