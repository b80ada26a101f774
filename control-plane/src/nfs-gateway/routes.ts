/**
 * Session → executor NFS address, for the gateway. Everything comes from Redis (the session
 * record and its tag index), so any control-plane replica routes any client.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import { log } from '../log.js';
import { SessionPausedError } from '../sessions/errors.js';
import type { SessionStore } from '../sessions/records.js';
import { exportNameOf, nfsTagKey, sessionOfExport } from '../sessions/nfs.js';
import type { ExecutorDirectory } from '../scheduler/records.js';
import type { Keys } from '../store/keys.js';
import type { SessionRecord } from '../sessions/records.js';

/** Where an executor's NFS server listens, as seen from the control plane. */
export interface Upstream {
  host: string;
  port: number;
  /** The executor's agent token, which the gateway proves it holds after its PROXY line. */
  key?: string;
}

/**
 * A session the gateway must not forward to: paused with `autoResume: false` (`paused`), or
 * its resume failed (`failed`). The client gets an NFS error at once, never a wait.
 */
export interface Refusal {
  refused: 'paused' | 'failed';
}

/** The lookups the gateway needs; undefined means "no such session (any more)". */
export interface RouteSource {
  bySession(exportName: string): Promise<Upstream | Refusal | undefined>;
  byTag(tag: string): Promise<Upstream | Refusal | undefined>;
}

/**
 * Resumes a paused or hibernated session before its NFS call is forwarded (autoResume): the
 * record after. Throws SessionPausedError when the session was made with `autoResume: false`.
 */
export type Wake = (r: SessionRecord) => Promise<SessionRecord>;

/**
 * How long a found route is reused without asking Redis. Short, because a route only goes
 * stale when a session ends, and then the executor answers NOENT/STALE by itself anyway.
 */
const CACHE_MS = 2_000;
const CACHE_MAX = 10_000;

/** {@link RouteSource} over the session records, with a brief in-memory cache of hits. */
export class SessionRoutes implements RouteSource {
  private readonly cache = new Map<string, { upstream: Upstream; until: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly sessions: SessionStore,
    private readonly executors: ExecutorDirectory,
    /** Set once the session service exists (it is made after the gateway listens). */
    private readonly wake?: () => Wake | undefined,
  ) {}

  /**
   * The upstream of the export a MOUNT names (`<session-id>-<secret>`): the session's executor,
   * which alone checks the secret (a wrong one is NOENT there, as an unknown session is here).
   */
  bySession(exportName: string): Promise<Upstream | Refusal | undefined> {
    const sessionId = sessionOfExport(exportName);
    return this.cached(`s:${sessionId}`, async () => {
      const record = await this.sessions.get(sessionId);
      // Only a MOUNT that names the whole export (its secret too) may wake a paused session:
      // knowing a session id must not be enough to resume it. A wrong secret is left to the
      // executor, which answers NOENT as for an unknown session.
      const woken = record?.nfs && sameName(exportName, exportNameOf(record.id, record.nfs)) ? await this.awake(record) : record;
      return woken && 'refused' in woken ? woken : this.upstreamOf(woken);
    });
  }

  byTag(tag: string): Promise<Upstream | Refusal | undefined> {
    return this.cached(`t:${tag}`, async () => {
      const sessionId = await this.redis.get(nfsTagKey(this.keys, tag));
      if (!sessionId) return undefined;
      const record = await this.sessions.get(sessionId);
      // The index may outlive its session for a moment; the record is what counts.
      if (record?.nfs?.tag !== tag) return undefined;
      const woken = await this.awake(record);
      return 'refused' in woken ? woken : this.upstreamOf(woken);
    });
  }

  /** The record with its session running: resumed first when paused or hibernated (autoResume). */
  private async awake(record: SessionRecord): Promise<SessionRecord | Refusal> {
    const wake = this.wake?.();
    if ((record.state !== 'paused' && record.state !== 'hibernated') || !wake) return record;
    try {
      return await wake(record);
    } catch (err) {
      if (err instanceof SessionPausedError) return { refused: 'paused' };
      log('warn', 'nfs gateway could not resume a paused session', { sessionId: record.id, error: String(err) });
      return { refused: 'failed' };
    }
  }

  /** The session's executor NFS address, with that executor's token for the PROXY auth line. */
  private async upstreamOf(record: SessionRecord | undefined): Promise<Upstream | undefined> {
    const upstream = record?.nfs?.upstream;
    // A lost session's executor is gone; its export with it.
    if (!record || !upstream || record.state === 'lost') return undefined;
    const key = (await this.executors.executor(record.executorId))?.token;
    return key ? { ...upstream, key } : upstream;
  }

  private async cached(key: string, load: () => Promise<Upstream | Refusal | undefined>): Promise<Upstream | Refusal | undefined> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.upstream;
    const upstream = await load();
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    // A refusal is not cached: the next call after a resume goes through at once.
    if (upstream && !('refused' in upstream)) this.cache.set(key, { upstream, until: now + CACHE_MS });
    else this.cache.delete(key);
    return upstream;
  }
}

/** Constant-time comparison of two export names (the name holds the export's secret). */
function sameName(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
