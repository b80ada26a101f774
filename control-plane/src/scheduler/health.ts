import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { Template } from '../templates/template.js';
import type { SandboxRecords } from './records.js';
import type { Reaper } from './reaper.js';
import type { Scheduler } from './scheduler.js';

/** An executor that fails this many health checks in a row is stopped and replaced. */
const FAILURES_TO_LOSE = 2;
const HEALTH_TIMEOUT_MS = 1500;
/**
 * A failed check is repeated after this pause within the same round, so a dead executor is
 * replaced in about a second instead of two rounds (its stale warm sandboxes would each
 * fail a request meanwhile), while one dropped packet or GC pause does not kill it.
 */
const RECHECK_AFTER_MS = 250;

/**
 * Checks every executor of a template once per keeper round. A live executor's sandbox list
 * is compared with Redis: idle sandboxes it no longer runs (crashed) are forgotten, and the
 * keeper refills the pool. An executor that does not answer twice in a row is dropped from
 * scheduling with its sandboxes (Scheduler.executorGone; the keeper then stops it through the
 * runtime). The failure count lives in Redis so that rounds run by different replicas add up.
 */
export class ExecutorHealth {
  constructor(
    private readonly records: SandboxRecords,
    private readonly agents: AgentPool,
    private readonly scheduler: Scheduler,
    private readonly reaper: Reaper,
  ) {}

  /** Returns the number of executors lost this round. */
  async check(template: Template): Promise<number> {
    const ids = await this.records.executorIds(template.name);
    // Records first, then each executor's list: a record idle before the list was taken must be in it.
    const records = await this.records.snapshot(template.name);
    let lost = 0;
    await Promise.all(
      ids.map(async (id) => {
        const handle = await this.records.executor(id);
        if (!handle) {
          // In placement without a record: nothing can reach it, so it holds nothing usable.
          await this.scheduler.executorGone(template.name, id, 'executor record missing');
          return;
        }
        let running: Set<string> | undefined;
        for (let attempt = 0; !running; attempt++) {
          try {
            running = new Set((await this.agents.get(handle).listSandboxes(HEALTH_TIMEOUT_MS)).map((s) => s.sandboxId));
          } catch (err) {
            const n = await this.records.healthFailed(template.name, id);
            log('warn', 'executor did not answer its health check', { executorId: id, template: template.name, failures: n, error: String(err) });
            if (n >= FAILURES_TO_LOSE) {
              await this.lose(template, id);
              lost++;
              return;
            }
            if (attempt > 0) return;
            await new Promise((r) => setTimeout(r, RECHECK_AFTER_MS));
          }
        }
        await this.records.healthPassed(template.name, id);
        for (const r of records) {
          if (r.executor !== id || r.state !== 'idle' || running.has(r.id)) continue;
          if (await this.reaper.reapIdle(r, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)) {
            log('info', 'forgot a sandbox that crashed while idle', { sandboxId: r.id, executorId: id });
          }
        }
      }),
    );
    return lost;
  }

  /** Drops an executor that stopped answering, with everything it held; the keeper stops it. */
  async lose(template: Template, executorId: string): Promise<void> {
    await this.scheduler.executorGone(template.name, executorId, 'executor stopped answering its health checks');
  }
}
