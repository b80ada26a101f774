import type { Redis } from 'ioredis';
import type { AgentPool } from '../agent/client.js';
import { log } from '../log.js';
import type { Runtime } from '../runtimes/runtime.js';
import type { ExecutorStore } from '../store/executors.js';
import type { Keys } from '../store/keys.js';
import type { Template } from '../templates/template.js';
import { readSandboxes } from './records.js';
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
 * keeper refills the pool. An executor that does not answer twice in a row is stopped
 * through the runtime and its sandboxes forgotten. The failure count lives in Redis so that
 * rounds run by different replicas add up.
 */
export class ExecutorHealth {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly executors: ExecutorStore,
    private readonly agents: AgentPool,
    private readonly runtime: Runtime,
    private readonly scheduler: Scheduler,
    private readonly reaper: Reaper,
  ) {}

  /** Returns the number of executors lost this round. */
  async check(template: Template): Promise<number> {
    const failures = this.keys.executorFailures(template.name);
    const ids = await this.executors.listIds(template.name);
    // Records first, then each executor's list: a record idle before the list was taken must be in it.
    const records = await readSandboxes(this.redis, this.keys, template.name);
    let lost = 0;
    await Promise.all(
      ids.map(async (id) => {
        const handle = await this.executors.get(id);
        if (!handle) {
          await this.redis.zrem(this.keys.executors(template.name), id);
          return;
        }
        let running: Set<string> | undefined;
        for (let attempt = 0; !running; attempt++) {
          try {
            running = new Set((await this.agents.get(handle).listSandboxes(HEALTH_TIMEOUT_MS)).map((s) => s.sandboxId));
          } catch (err) {
            const n = await this.redis.hincrby(failures, id, 1);
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
        await this.redis.hdel(failures, id);
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

  /** Stops an executor that stopped answering and forgets everything it held. */
  async lose(template: Template, executorId: string): Promise<void> {
    log('warn', 'executor lost; stopping it and forgetting its sandboxes', { executorId, template: template.name });
    await this.runtime.stop(executorId).catch((err: unknown) => log('warn', 'could not stop a lost executor', { executorId, error: String(err) }));
    // Out of placement first, so no new sandbox is reserved on it while its records go.
    await this.executors.remove({ id: executorId, template: template.name });
    for (const r of await readSandboxes(this.redis, this.keys, template.name)) {
      if (r.executor !== executorId) continue;
      if (r.state === 'idle') await this.reaper.reapIdle(r, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      else await this.scheduler.forget(template.name, r.id);
    }
    this.agents.drop(executorId);
    await this.redis.hdel(this.keys.executorFailures(template.name), executorId);
  }
}
