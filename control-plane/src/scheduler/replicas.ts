import { randomUUID } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { log } from '../log.js';
import type { Keys } from '../store/keys.js';

/** How long a replica's heartbeat lives without a refresh: a replica silent this long is gone. */
export const HEARTBEAT_TTL_MS = 15_000;
const REFRESH_MS = 5_000;

/**
 * Where this process's pid means something: the machine's boot and its pid namespace. Two
 * replicas with the same place can check each other's pid; any other pair cannot (another host,
 * another container), and then only the TTL says a replica is gone. Undefined where unreadable.
 */
function pidPlace(): string | undefined {
  try {
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}/${readlinkSync('/proc/self/ns/pid')}`;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, as another user's process.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * This control-plane replica's heartbeat in Redis: one key per replica with a TTL, refreshed
 * every few seconds, deleted on a graceful stop. A replica that stops asks `othersAlive` to
 * decide whether it may stop the deployment's executors (only the last one does): executors
 * are shared by every replica, and one replica's stop must not fail another's calls.
 */
export class ReplicaHeartbeat {
  readonly id = randomUUID();
  private readonly place = pidPlace();
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

  /**
   * Ids of the other replicas whose heartbeat is alive. A heartbeat left by a replica that was
   * SIGKILLed on this machine (same boot, same pid namespace, its pid gone) is deleted and not
   * counted: without this, a Ctrl-C within 15 s of a crash left every executor running.
   */
  async others(): Promise<string[]> {
    const prefix = this.keys.replica('');
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      for (const k of keys) {
        if (k === this.keys.replica(this.id)) continue;
        if (await this.deadHere(k)) {
          await this.redis.del(k);
          continue;
        }
        found.push(k.slice(prefix.length));
      }
    } while (cursor !== '0');
    return found;
  }

  /** True only when the heartbeat names a pid of this machine and namespace that no longer runs. */
  private async deadHere(key: string): Promise<boolean> {
    if (!this.place) return false;
    const value = await this.redis.get(key);
    let beat: { place?: unknown; pid?: unknown };
    try {
      beat = JSON.parse(value ?? '') as { place?: unknown; pid?: unknown };
    } catch {
      return false; // an older replica's plain timestamp: only its TTL can tell
    }
    return beat.place === this.place && typeof beat.pid === 'number' && beat.pid !== process.pid && !processAlive(beat.pid);
  }

  private async beat(): Promise<void> {
    const value = JSON.stringify({ at: Date.now(), pid: process.pid, ...(this.place ? { place: this.place } : {}) });
    await this.redis.set(this.keys.replica(this.id), value, 'PX', HEARTBEAT_TTL_MS);
  }
}
