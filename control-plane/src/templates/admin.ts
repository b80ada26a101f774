import { TemplateInUseError } from '../errors.js';
import type { ExecutionQueues } from '../queue/queues.js';
import type { LeaseCache } from '../scheduler/lease-cache.js';
import type { SandboxRecords } from '../scheduler/records.js';
import type { TemplateRegistry } from './registry.js';
import { sandboxShape, withPlatform, type Template } from './template.js';

/**
 * Template changes made through the API. The registry stores them; what follows a change
 * (workers started or stopped, pools filled or torn down) is wired in server.ts as registry
 * listeners, so it happens on every replica, not only the one that took the request.
 */
export class TemplateAdmin {
  constructor(
    private readonly registry: TemplateRegistry,
    private readonly queues: ExecutionQueues,
    private readonly records: Pick<SandboxRecords, 'snapshot'>,
    private readonly leases: Pick<LeaseCache, 'flush'>,
  ) {}

  list(): Template[] {
    return this.registry.all().sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): Template {
    return this.registry.get(name);
  }

  create(t: Template): Promise<Template> {
    return this.registry.create(withoutRevision(t));
  }

  /**
   * Replaces a template. A change to what its sandboxes are made of stamps `revisedAt`, and the
   * reaper recycles every sandbox made before it as soon as it is idle (warm and hot alike).
   */
  update(t: Template): Promise<Template> {
    const before = this.registry.get(t.name);
    const next = withoutRevision(t);
    const revisedAt = sandboxShape(before) !== sandboxShape(next) ? Date.now() : before.revisedAt;
    return this.registry.update({ ...next, ...(revisedAt !== undefined ? { revisedAt } : {}) });
  }

  /**
   * Deletes a template unless jobs are queued or running on it, or any of its sandboxes is leased
   * (409). Leases this replica keeps for a function's next job are given back first (they go out
   * on the connection that reads the sandboxes, so the read sees them idle); another replica's
   * are back within 40 ms.
   */
  async remove(name: string): Promise<void> {
    this.registry.get(name);
    this.leases.flush(name);
    const counts = await this.queues.queue(name).getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
    const queuedJobs = Object.values(counts).reduce((a, b) => a + b, 0);
    const busySandboxes = (await this.records.snapshot(name)).filter((r) => r.state !== 'idle').length;
    if (queuedJobs > 0 || busySandboxes > 0) throw new TemplateInUseError(name, { queuedJobs, busySandboxes });
    await this.registry.remove(name);
  }
}

/** `revisedAt` is Kiln's to set: one sent by a client is dropped (a future one would recycle every sandbox forever). */
/** A template as given to the API: Kiln stamps revisions; the old `executor` name becomes `platform`. */
function withoutRevision(t: Template): Template {
  const copy = withPlatform(t);
  delete copy.revisedAt;
  return copy;
}
