import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { log } from '../log.js';
import type { Keys } from '../store/keys.js';

/** How long a replica's heartbeat lives without a refresh: a replica silent this long is gone. */
export const HEARTBEAT_TTL_MS = 15_000;
const REFRESH_MS = 5_000;

/**
 * This control-plane replica's heartbeat in Redis: one key per replica with a TTL, refreshed
 * every few seconds, deleted on a graceful stop. A replica that stops asks `othersAlive` to
 * decide whether it may stop the deployment's executors (only the last one does): executors
 * are shared by every replica, and one replica's stop must not fail another's calls.
 */
export class ReplicaHeartbeat {
  readonly id = randomUUID();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Writes the heartbeat (before anything else starts, so replicas stopping meanwhile see this one). */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      // A missed beat only matters if three in a row go; the log says why.
      this.beat().catch((err: unknown) => log('warn', 'could not refresh the replica heartbeat', { error: String(err) }));
    }, REFRESH_MS);
    this.timer.unref();
  }

  /** Stops beating and deletes the heartbeat: from now on other replicas see this one gone. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.redis.del(this.keys.replica(this.id));
  }

  /** Ids of the other replicas whose heartbeat is alive. */
  async others(): Promise<string[]> {
    const prefix = this.keys.replica('');
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      for (const k of keys) if (k !== this.keys.replica(this.id)) found.push(k.slice(prefix.length));
    } while (cursor !== '0');
    return found;
  }

  private async beat(): Promise<void> {
    await this.redis.set(this.keys.replica(this.id), String(Date.now()), 'PX', HEARTBEAT_TTL_MS);
  }
}
