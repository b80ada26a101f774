import { KilnError } from '../errors.js';

/**
 * How many uploads one tenant streams at once through this replica. An upload holds a socket
 * and a gRPC stream to an executor for as long as its body takes (up to an hour for a file of
 * gigabytes), so without a bound one tenant's slow uploads would hold what every tenant's
 * uploads need. Counted in this process: each replica admits `max` per tenant.
 */
export class UploadSlots {
  private readonly held = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Takes a slot for `tenant` (429 `TooManyUploads` when none is free) and returns its release. */
  take(tenant: string): () => void {
    const n = this.held.get(tenant) ?? 0;
    if (n >= this.max) {
      throw new KilnError('TooManyUploads', 429, `this tenant already streams ${this.max} uploads at once; retry when one has finished`, { limit: this.max, retryAfterSeconds: 1 }, true);
    }
    this.held.set(tenant, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.held.get(tenant) ?? 1) - 1;
      if (left <= 0) this.held.delete(tenant);
      else this.held.set(tenant, left);
    };
  }

  /** Runs `upload` in a slot of `tenant`'s, released however it ends. */
  async run<T>(tenant: string, upload: () => Promise<T>): Promise<T> {
    const release = this.take(tenant);
    try {
      return await upload();
    } finally {
      release();
    }
  }
}
