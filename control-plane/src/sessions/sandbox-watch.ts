import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { SandboxRecords } from '../scheduler/records.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { SessionStore } from './records.js';

/**
 * Notices a session whose sandbox went while its executor lives on (the sandbox's init died:
 * OOM, a crash, an executor that restarted its sandboxes): each round asks every executor that
 * holds running sessions which sandboxes it runs, and forgets the sandbox record of a session
 * whose sandbox is not among them (checked twice, the session re-read between). The session
 * reaper then marks it `lost` ("sandbox gone") from the missing record, as for any other loss,
 * so no one sees it `running` while every call on it fails. The executor health check covers
 * executors that are gone; idle pool sandboxes are its business too. An executor that does not
 * answer is left to that check.
 */
export class SessionSandboxWatch {
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly sessions: Pick<SessionStore, 'all' | 'get'>,
    private readonly records: Pick<SandboxRecords, 'executor'>,
    private readonly agents: AgentPool,
    private readonly scheduler: Pick<Scheduler, 'forget'>,
    private readonly intervalMs = 2000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = true;
      this.round()
        .catch((err: unknown) => log('warn', 'session sandbox watch round failed', { error: String(err) }))
        .finally(() => (this.running = false));
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round; returns the ids of the sessions whose sandbox record it forgot. */
  async round(): Promise<string[]> {
    const live = (await this.sessions.all()).filter((r) => r.state === undefined || r.state === 'running');
    const byExecutor = new Map<string, typeof live>();
    for (const r of live) byExecutor.set(r.executorId, [...(byExecutor.get(r.executorId) ?? []), r]);
    const forgotten: string[] = [];
    for (const [executorId, held] of byExecutor) {
      const handle = await this.records.executor(executorId);
      if (!handle) continue;
      const runs = async (): Promise<Set<string> | undefined> => {
        try {
          return new Set((await this.agents.get(handle).listSandboxes()).map((s) => s.sandboxId));
        } catch {
          return undefined;
        }
      };
      const first = await runs();
      const missing = first && held.filter((r) => !first.has(r.sandboxId));
      if (!missing?.length) continue;
      // Again, after re-reading each session: one ended (its sandbox destroyed) since the list
      // of sessions was taken is not a loss, and a listing taken mid-create is not either.
      const second = await runs();
      if (!second) continue;
      for (const r of missing) {
        const fresh = await this.sessions.get(r.id);
        if (!fresh || (fresh.state !== undefined && fresh.state !== 'running') || fresh.sandboxId !== r.sandboxId || second.has(r.sandboxId)) continue;
        log('warn', "a session's sandbox is gone from its live executor", { sessionId: r.id, sandboxId: r.sandboxId, executorId });
        await this.scheduler.forget(r.template, r.sandboxId);
        forgotten.push(r.id);
      }
    }
    return forgotten;
  }
}
