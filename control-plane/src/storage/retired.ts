import type { Redis } from 'ioredis';
import { log, withoutLogContext } from '../log.js';
import type { BlobStore } from './blobs.js';

/** How often each replica looks for retired blobs that are due. */
const SWEEP_EVERY_MS = 60_000;
/** Blobs deleted per sweep step, so one sweep of a large backlog does not hold the loop. */
const BATCH = 100;

/**
 * Blobs that nothing uses any more but that must outlive that for a while (a code package
 * replaced by an update, which jobs queued before still name), deleted once due. Kept as a
 * Redis sorted set (key → due time) rather than in each adapter: S3 and disk have no per-object
 * expiry. Every replica sweeps; whichever removes a key from the set deletes its blob, so each
 * is deleted once. Blob keys are never written twice (functions/package.ts), so a retired key
 * never comes back into use.
 */
export class BlobRetirements {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly setKey: string,
    private readonly blobs: BlobStore,
  ) {}

  async retire(key: string, seconds: number): Promise<void> {
    await this.redis.zadd(this.setKey, Date.now() + seconds * 1000, key);
  }

  /** Deletes the blobs due by `now`; resolves with how many this replica deleted. */
  async sweep(now = Date.now()): Promise<number> {
    let deleted = 0;
    for (;;) {
      const due = await this.redis.zrangebyscore(this.setKey, '-inf', now, 'LIMIT', 0, BATCH);
      if (!due.length) return deleted;
      for (const key of due) {
        // Claimed by removing it: another replica's sweep that read the same key skips it.
        if ((await this.redis.zrem(this.setKey, key)) === 0) continue;
        await this.blobs.delete(key).catch((err: unknown) => log('warn', 'could not delete a retired blob', { key, error: String(err) }));
        deleted++;
      }
    }
  }

  start(everyMs = SWEEP_EVERY_MS): void {
    const tick = () => {
      this.sweep()
        .catch((err: unknown) => log('warn', 'retired blob sweep failed; retrying later', { error: String(err) }))
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, everyMs).unref();
        });
    };
    this.timer = withoutLogContext(() => setTimeout(tick, everyMs).unref());
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
