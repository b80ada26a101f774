import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { log, withLogContext } from '../log.js';
import { DEFAULT_TENANT } from '../tenancy/principal.js';
import type { Keys } from '../store/keys.js';
import { LOST_SESSION_RETENTION_MS, type SessionService } from './service.js';
import type { SessionLifecycle } from './lifecycle.js';
import type { SessionRecord } from './records.js';

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
    /** Pause instead of ending (autoPause), hibernation and the end of long pauses. */
    private readonly lifecycle?: SessionLifecycle,
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
        if ((r.state === 'paused' || r.state === 'hibernated') && this.lifecycle) {
          await this.paused(r, now);
          continue;
        }
        if (r.state !== 'lost' && r.autoPause && this.lifecycle && now < r.expiresAt && now >= r.lastActivityAt + r.idleTimeoutMs) {
          await this.step(r, 'auto-pause', () => (this.lifecycle as SessionLifecycle).autoPause(r));
          continue;
        }
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

  /**
   * A paused session's clock: expiry and idleness stop while paused; past
   * KILN_SESSION_HIBERNATE_AFTER_MS it is hibernated, past KILN_SESSION_PAUSED_RETENTION_MS ended.
   */
  private async paused(r: SessionRecord, now: number): Promise<void> {
    const lifecycle = this.lifecycle as SessionLifecycle;
    const pausedAt = r.pausedAt ?? now;
    if (now >= pausedAt + lifecycle.opts.pausedRetentionMs) {
      await this.step(r, 'end a long-paused session', () => this.sessions.end(r, 'paused too long'));
    } else if (r.state === 'paused' && lifecycle.opts.hibernateAfterMs > 0 && now >= pausedAt + lifecycle.opts.hibernateAfterMs) {
      await this.step(r, 'hibernate', () => lifecycle.hibernate(r.id));
    }
  }

  /** One step on one session; a failure is logged with the session's tenant, and the round goes on. */
  private async step(r: SessionRecord, what: string, fn: () => Promise<unknown>): Promise<void> {
    await withLogContext({ tenant: r.tenant ?? DEFAULT_TENANT }, async () => {
      try {
        await fn();
      } catch (err) {
        log('warn', `could not ${what}`, { sessionId: r.id, error: String(err) });
      }
    });
  }
}
