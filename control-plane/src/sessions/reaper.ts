import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { log, withLogContext } from '../log.js';
import { DEFAULT_TENANT } from '../tenancy/principal.js';
import type { Keys } from '../store/keys.js';
import { LOST_SESSION_RETENTION_MS, type SessionService } from './service.js';

/**
 * Ends sessions past their expiry or idle for longer than their idleTimeoutMs, marks sessions
 * whose sandbox record is gone as lost, and removes lost sessions LOST_SESSION_RETENTION_MS
 * after they were lost. Every replica
 * runs one; a short Redis lock makes one of them act per round, and `SessionStore.remove`
 * makes sure a session raced by the API and the reaper is destroyed once.
 */
export class SessionReaper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly replica = randomUUID();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly sessions: SessionService,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = true;
      this.round()
        .catch((err: unknown) => log('warn', 'session reaper round failed', { error: String(err) }))
        .finally(() => (this.running = false));
    }, this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round; returns the ids of the sessions it ended. */
  async round(now = Date.now()): Promise<string[]> {
    const lock = this.keys.sessionReaperLock;
    if ((await this.redis.set(lock, this.replica, 'PX', 30_000, 'NX')) !== 'OK') return [];
    const ended: string[] = [];
    try {
      const all = await this.sessions.store.all();
      const orphans = new Set(await this.sessions.markOrphans(all, now));
      for (const r of all) {
        if (orphans.has(r.id)) continue;
        const reason =
          r.state === 'lost'
            ? now >= (r.lostAt ?? 0) + LOST_SESSION_RETENTION_MS
              ? 'lost session kept long enough'
              : undefined
            : now >= r.expiresAt
              ? 'expired'
              : now >= r.lastActivityAt + r.idleTimeoutMs
                ? 'idle'
                : undefined;
        if (!reason) continue;
        // Lines about ending it (here and in the service) name the session's tenant.
        await withLogContext({ tenant: r.tenant ?? DEFAULT_TENANT }, async () => {
          try {
            if (await this.sessions.end(r, reason)) ended.push(r.id);
          } catch (err) {
            log('warn', 'could not end session', { sessionId: r.id, reason, error: String(err) });
          }
        });
      }
    } finally {
      if ((await this.redis.get(lock)) === this.replica) await this.redis.del(lock);
    }
    return ended;
  }
}
