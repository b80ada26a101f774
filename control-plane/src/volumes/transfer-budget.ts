import { KilnError } from '../errors.js';

export class VolumeTransfersBusyError extends KilnError {
  constructor(waitedMs: number, budgetMB: number) {
    super(
      'VolumeTransfersBusy',
      503,
      `synced volume archives already hold this replica's ${budgetMB} MB for transfers (KILN_VOLUME_TRANSFER_MEMORY_MB), and none freed room in ${Math.round(waitedMs / 1000)} s; retry shortly`,
      { budgetMB, retryAfterSeconds: 5 },
      true,
    );
  }
}

/**
 * The memory this replica lends to synced-volume archives in flight (volumes/synced.ts): each
 * transfer reserves the most its archive can be before reading any of it, and gives it back
 * when done, so however many sessions fill or sync at once, from however many tenants, the
 * archives held together stay within `bytes`. A transfer that does not fit waits its turn
 * (first come, first served: a big one is not overtaken for ever by small ones) for up to
 * `waitMs`, then fails with 503 VolumeTransfersBusy. A transfer never waits while it holds a
 * reservation, so two cannot wait on each other.
 */
export class TransferBudget {
  private used = 0;
  private readonly queue: Array<{ bytes: number; grant: () => void }> = [];

  constructor(
    readonly bytes: number,
    private readonly waitMs = 30_000,
  ) {}

  /** Reserves `n` bytes (at most the whole budget) and resolves with the function that gives them back. */
  async reserve(n: number): Promise<() => void> {
    const bytes = Math.min(Math.max(0, n), this.bytes);
    if (this.queue.length === 0 && this.used + bytes <= this.bytes) {
      this.used += bytes;
      return this.releaser(bytes);
    }
    await new Promise<void>((resolve, reject) => {
      const entry = { bytes, grant: () => resolve() };
      this.queue.push(entry);
      const timer = setTimeout(() => {
        const i = this.queue.indexOf(entry);
        if (i < 0) return; // granted meanwhile
        this.queue.splice(i, 1);
        reject(new VolumeTransfersBusyError(this.waitMs, Math.round(this.bytes / (1024 * 1024))));
        // The head may have been this one: those behind it may fit now.
        this.drain();
      }, this.waitMs);
      entry.grant = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    return this.releaser(bytes);
  }

  /** Bytes reserved now (for tests and /metrics). */
  get reserved(): number {
    return this.used;
  }

  private releaser(bytes: number): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.used -= bytes;
      this.drain();
    };
  }

  /** Grants waiting reservations in order while the head fits. */
  private drain(): void {
    for (let head = this.queue[0]; head && this.used + head.bytes <= this.bytes; head = this.queue[0]) {
      this.queue.shift();
      this.used += head.bytes;
      head.grant();
    }
  }
}
