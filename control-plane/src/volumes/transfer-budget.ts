import { KilnError } from '../errors.js';

const MB = 1024 * 1024;

export class VolumeTransfersBusyError extends KilnError {
  constructor(waitedMs: number, budgetMB: number) {
    super(
      'VolumeTransfersBusy',
      503,
      `synced volume archives already hold this replica's ${budgetMB} MB for transfers (KILN_VOLUME_TRANSFER_MEMORY_MB), or this tenant's half of it, and none freed room in ${Math.round(waitedMs / 1000)} s; retry shortly`,
      { budgetMB, retryAfterSeconds: 5 },
      true,
    );
  }
}

interface Waiter {
  tenant: string;
  bytes: number;
  grant: () => void;
}

/**
 * The memory this replica lends to synced-volume archives in flight (volumes/synced.ts): each
 * transfer reserves the most its archive can be before reading any of it, and gives it back
 * when done, so however many sessions fill or sync at once the archives held together stay
 * within `bytes`. A tenant holds at most half of it while it has more than one transfer going
 * (one transfer of any size fits alone), so one tenant's many sessions leave room for others.
 *
 * A transfer that does not fit waits its turn for up to `waitMs`, then fails with 503
 * VolumeTransfersBusy. Waiters are served in order: one that does not fit the whole budget
 * stops those behind it (a big transfer is not overtaken for ever by small ones); one held back
 * only by its own tenant's share lets the others pass. A transfer never waits while it holds a
 * reservation, so two cannot wait on each other.
 */
export class TransferBudget {
  private used = 0;
  private readonly byTenant = new Map<string, number>();
  private readonly queue: Waiter[] = [];

  constructor(
    readonly bytes: number,
    private readonly waitMs = 30_000,
  ) {}

  /** Reserves `n` bytes for `tenant` and resolves with the function that gives them back. */
  async reserve(tenant: string, n: number): Promise<() => void> {
    const bytes = Math.max(0, n);
    if (bytes > this.bytes) {
      throw new KilnError('VolumeTransferTooLarge', 503, `this archive (${Math.ceil(bytes / MB)} MB) is larger than all the memory this replica lends to volume transfers (KILN_VOLUME_TRANSFER_MEMORY_MB=${Math.round(this.bytes / MB)})`, { budgetMB: Math.round(this.bytes / MB) });
    }
    await new Promise<void>((resolve, reject) => {
      const entry: Waiter = { tenant, bytes, grant: resolve };
      this.queue.push(entry);
      this.drain();
      if (!this.queue.includes(entry)) return;
      const timer = setTimeout(() => {
        const i = this.queue.indexOf(entry);
        if (i < 0) return; // granted meanwhile
        this.queue.splice(i, 1);
        reject(new VolumeTransfersBusyError(this.waitMs, Math.round(this.bytes / MB)));
        // The head may have been this one: those behind it may fit now.
        this.drain();
      }, this.waitMs);
      entry.grant = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    return this.releaser(tenant, bytes);
  }

  /** Bytes reserved now, all tenants, or one (for tests and /metrics). */
  reserved(tenant?: string): number {
    return tenant === undefined ? this.used : (this.byTenant.get(tenant) ?? 0);
  }

  private releaser(tenant: string, bytes: number): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.used -= bytes;
      const left = (this.byTenant.get(tenant) ?? bytes) - bytes;
      if (left > 0) this.byTenant.set(tenant, left);
      else this.byTenant.delete(tenant);
      this.drain();
    };
  }

  /** Grants waiting reservations in order, as the rules above say. */
  private drain(): void {
    for (let i = 0; i < this.queue.length; ) {
      const w = this.queue[i] as Waiter;
      if (this.used + w.bytes > this.bytes) return;
      const held = this.byTenant.get(w.tenant) ?? 0;
      if (held > 0 && held + w.bytes > this.bytes / 2) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.used += w.bytes;
      this.byTenant.set(w.tenant, held + w.bytes);
      w.grant();
    }
  }
}
