/**
 * Session → executor NFS address, for the gateway. Everything comes from Redis (the session
 * record and its tag index), so any control-plane replica routes any client.
 */
import type { Redis } from 'ioredis';
import type { SessionStore } from '../sessions/records.js';
import { nfsTagKey, sessionOfExport } from '../sessions/nfs.js';
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

/** The lookups the gateway needs; undefined means "no such session (any more)". */
export interface RouteSource {
  bySession(exportName: string): Promise<Upstream | undefined>;
  byTag(tag: string): Promise<Upstream | undefined>;
}

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
  ) {}

  /**
   * The upstream of the export a MOUNT names (`<session-id>-<secret>`): the session's executor,
   * which alone checks the secret (a wrong one is NOENT there, as an unknown session is here).
   */
  bySession(exportName: string): Promise<Upstream | undefined> {
    const sessionId = sessionOfExport(exportName);
    return this.cached(`s:${sessionId}`, async () => this.upstreamOf(await this.sessions.get(sessionId)));
  }

  byTag(tag: string): Promise<Upstream | undefined> {
    return this.cached(`t:${tag}`, async () => {
      const sessionId = await this.redis.get(nfsTagKey(this.keys, tag));
      if (!sessionId) return undefined;
      const record = await this.sessions.get(sessionId);
      // The index may outlive its session for a moment; the record is what counts.
      return record?.nfs?.tag === tag ? this.upstreamOf(record) : undefined;
    });
  }

  /** The session's executor NFS address, with that executor's token for the PROXY auth line. */
  private async upstreamOf(record: SessionRecord | undefined): Promise<Upstream | undefined> {
    const upstream = record?.nfs?.upstream;
    // A lost session's executor is gone; its export with it.
    if (!record || !upstream || record.state === 'lost') return undefined;
    const key = (await this.executors.executor(record.executorId))?.token;
    return key ? { ...upstream, key } : upstream;
  }

  private async cached(key: string, load: () => Promise<Upstream | undefined>): Promise<Upstream | undefined> {
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.upstream;
    const upstream = await load();
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    if (upstream) this.cache.set(key, { upstream, until: now + CACHE_MS });
    else this.cache.delete(key);
    return upstream;
  }
}
