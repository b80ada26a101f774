import type { AgentPool } from './agent/client.js';
import { log } from './log.js';
import type { Runtime } from './runtimes/runtime.js';
import type { Scheduler } from './scheduler/scheduler.js';
import type { ExecutorStore } from './store/executors.js';
import type { Redis } from 'ioredis';
import type { Keys } from './store/keys.js';
import type { TemplateRegistry } from './templates/registry.js';

/**
 * A record worth keeping: idle, or leased/booting by a replica that may still be alive
 * (another control plane sharing this Redis), judged by the lease's expiry.
 */
function keep(r: Record<string, string>): boolean {
  if (r.state === 'idle') return true;
  // Half-reaped by a replica that died: finish the job (the executor's copy is destroyed below).
  if (r.state === 'reaping') return false;
  if (r.state === 'busy') return Number(r.leaseUntil ?? 0) > Date.now();
  return Date.now() - Number(r.createdAt ?? 0) < 60_000;
}

/**
 * Start-up reconciliation: executors the runtime reports (by label) and that answer are
 * adopted; Redis records of executors that are gone are dropped with their sandboxes;
 * sandboxes an executor runs that Redis does not know, or that were leased by a control
 * plane that died, are destroyed. Queued jobs are untouched: BullMQ keeps them.
 */
export async function reconcile(deps: { redis: Redis; keys: Keys; runtime: Runtime; executors: ExecutorStore; agents: AgentPool; scheduler: Scheduler; templates: TemplateRegistry }): Promise<void> {
  const { redis, keys, runtime, executors, agents, scheduler, templates } = deps;
  const live = new Map((await runtime.list()).map((h) => [h.id, h]));
  for (const template of templates.all()) {
    const known = new Set(await executors.listIds(template.name));
    for (const id of known) {
      if (live.has(id)) continue;
      log('info', 'dropping executor that is gone', { executorId: id, template: template.name });
      // Gone, but it may have left host resources behind (local: its files and uid range) that
      // `list` could not find without a state file; `stop` of a gone executor releases them.
      await runtime.stop(id).catch((err: unknown) => log('warn', 'could not release what a gone executor held', { executorId: id, error: String(err) }));
      await executors.remove({ id, template: template.name });
    }
    const sandboxIds = await redis.smembers(keys.sandboxes(template.name));
    const records = await Promise.all(sandboxIds.map((id) => redis.hgetall(keys.sandbox(id))));
    for (const handle of live.values()) {
      if (handle.template !== template.name) continue;
      let running: string[];
      try {
        running = (await agents.get(handle).listSandboxes()).map((s) => s.sandboxId);
      } catch (err) {
        log('warn', 'executor does not answer; stopping it', { executorId: handle.id, error: String(err) });
        await runtime.stop(handle.id);
        await executors.remove(handle);
        continue;
      }
      const ours = new Set(records.filter((r) => r.executor === handle.id && keep(r)).map((r) => r.id));
      for (const id of running) {
        if (!ours.has(id)) await agents.get(handle).destroySandbox(id).catch(() => false);
      }
      await executors.add(handle, ours.size);
      await redis.zadd(keys.executors(template.name), ours.size, handle.id);
      if (!known.has(handle.id)) log('info', 'adopted executor', { executorId: handle.id, template: template.name });
    }
    // Busy records belonged to invocations of a control plane that is gone; idle ones on
    // dead executors point nowhere. Both go.
    for (const r of records) {
      if (!r.id) continue;
      const executorAlive = live.has(r.executor ?? '');
      if (!executorAlive || !keep(r)) await scheduler.forget(template.name, r.id);
    }
  }
}
