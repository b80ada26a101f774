import type { AgentPool } from './agent/client.js';
import { log } from './log.js';
import type { Platform } from './platforms/platform.js';
import { stillHeld, type SandboxRecords } from './scheduler/records.js';
import type { Scheduler } from './scheduler/scheduler.js';
import type { TemplateRegistry } from './templates/registry.js';

/**
 * Start-up reconciliation: executors the runtime reports (by label) and that answer are
 * adopted, with the sandboxes sessions hold on them (their processes, terminals and NFS exports
 * live in the executor, their records and access tokens in Redis, so nothing else needs redoing); records of executors that are gone are dropped with their sandboxes; sandboxes an
 * executor runs that Redis does not know, or that were leased by a control plane that died,
 * are destroyed; ids left on the warm and hot lists by records that went are dropped, so the
 * keeper counts only sandboxes that exist. Queued jobs are untouched: BullMQ keeps them.
 */
export async function reconcile(deps: {
  records: SandboxRecords;
  runtime: Platform;
  agents: AgentPool;
  scheduler: Scheduler;
  templates: TemplateRegistry;
  /** Sandbox ids that running sessions hold: kept on a live executor whatever their lease says. */
  heldBySessions?: () => Promise<Set<string>>;
}): Promise<void> {
  const { records, runtime, agents, scheduler, templates } = deps;
  const sessionHeld = (await deps.heldBySessions?.()) ?? new Set<string>();
  const live = new Map((await runtime.list()).map((h) => [h.id, h]));
  for (const template of templates.all()) {
    const known = new Set(await records.executorIds(template.name));
    for (const id of known) {
      if (live.has(id)) continue;
      log('info', 'dropping executor that is gone', { executorId: id, template: template.name });
      await records.dropExecutor(template.name, id);
      // Gone, but it may have left host resources behind (local: its files and uid range) that
      // `list` could not find without a state file; `stop` of a gone executor releases them.
      await runtime.stop(id).catch((err: unknown) => log('warn', 'could not release what a gone executor held', { executorId: id, error: String(err) }));
    }
    const now = Date.now();
    const sandboxes = await records.snapshot(template.name);
    // Busy records belonged to invocations of a control plane that is gone, unless a session
    // holds them: a session outlives the control plane that made it (its lease runs a minute
    // past the session's expiry, and the session is recognised by id too, so its sandbox is never
    // taken for one nobody knows; the session reaper ends it once it expires). Idle ones on dead
    // executors point nowhere. Those go (and their ids off the idle lists), before the executors'
    // counts are set from what is left. Sessions on dead executors are marked lost by the caller.
    const kept = sandboxes.filter((r) => live.has(r.executor) && (stillHeld(r, now) || sessionHeld.has(r.id)));
    for (const r of sandboxes) if (!kept.includes(r)) await scheduler.forget(template.name, r.id);
    for (const handle of live.values()) {
      if (handle.template !== template.name) continue;
      let running: string[];
      try {
        running = (await agents.get(handle).listSandboxes()).map((s) => s.sandboxId);
      } catch (err) {
        log('warn', 'executor does not answer; stopping it', { executorId: handle.id, error: String(err) });
        await records.dropExecutor(template.name, handle.id);
        await runtime.stop(handle.id);
        continue;
      }
      const ours = new Set(kept.filter((r) => r.executor === handle.id).map((r) => r.id));
      for (const id of running) {
        if (ours.has(id)) continue;
        await agents
          .get(handle)
          .destroySandbox(id)
          .catch((err: unknown) => log('warn', 'could not destroy a sandbox no record knows', { executorId: handle.id, sandboxId: id, error: String(err) }));
      }
      await records.adoptExecutor(handle, ours.size);
      if (!known.has(handle.id)) log('info', 'adopted executor', { executorId: handle.id, template: template.name });
    }
    // Ids whose record went some other way (a control plane that died between two steps, an
    // older version that forgot records without their list entries).
    await records.pruneIdleLists(template.name);
  }
}
