import type { Redis } from 'ioredis';
import type { VolumeMount } from '@kiln/proto/executor/sandboxes';
import type { Keys } from '../store/keys.js';
import { nfsTagKey, type SessionNfs } from './nfs.js';

/** What Redis keeps about a session. Times are epoch ms. */
export interface SessionRecord {
  id: string;
  /** The tenant that made it (tenancy/principal.ts); absent: made before tenants, the default tenant's. */
  tenant?: string;
  template: string;
  runner: string;
  sandboxId: string;
  executorId: string;
  /** The scheduler lease owner, so the sandbox's record shows who holds it. */
  owner: string;
  createdAt: number;
  expiresAt: number;
  timeoutMs: number;
  idleTimeoutMs: number;
  lastActivityAt: number;
  env: Record<string, string>;
  metadata: Record<string, string>;
  /** The credential of the E2B in-sandbox surface (access-token.ts); absent on records from before it. */
  accessToken?: string;
  /** The NFS export of its /workspace, when its executor serves NFS. */
  nfs?: SessionNfs;
  /**
   * `lost` once its sandbox is gone without anyone ending it (its executor died); `paused` while
   * its sandbox's processes are frozen (sessions/lifecycle.ts); `hibernated` once a paused
   * session's /workspace went to the blob store and its sandbox was freed; absent = running.
   */
  state?: 'running' | 'paused' | 'hibernated' | 'lost';
  /** When it was paused (epoch ms); paused and hibernated sessions only. */
  pausedAt?: number;
  /** Ended for being idle unless this is set: then paused instead (absent = false). */
  autoPause?: boolean;
  /** Calls that need the sandbox resume a paused session first (absent = true). */
  autoResume?: boolean;
  /** Blob key of the /workspace tar of a hibernated session. */
  hibernatedTo?: string;
  /** How it was last resumed: its processes thawed, or its files restored into a new sandbox. */
  lastResumeType?: 'thawed' | 'restored';
  /** Why it was lost, e.g. "executor exited". */
  lostReason?: string;
  /** When it was lost (epoch ms); the record is kept for LOST_SESSION_RETENTION_MS after. */
  lostAt?: number;
  /** Named volumes as asked for at create (the API shows these). */
  volumes?: { name: string; path: string; readOnly: boolean }[];
  /** What the sandbox's boot request carried for them (volumes/service.ts); a restore boots with the same. */
  volumeMounts?: VolumeMount[];
}

/** KEYS[1] = ARGV[2] only while it still holds ARGV[1]. */
const CAS = "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2]) return 1 end return 0";

/** Session records: one JSON string per session plus a set of ids. */
export class SessionStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async put(r: SessionRecord): Promise<void> {
    const tx = this.redis.multi().set(this.keys.session(r.id), JSON.stringify(r)).sadd(this.keys.sessions, r.id);
    // The NFS gateway maps a file handle's export tag back to its session through this index.
    if (r.nfs?.tag) tx.set(nfsTagKey(this.keys, r.nfs.tag), r.id);
    await tx.exec();
  }

  async get(id: string): Promise<SessionRecord | undefined> {
    const raw = await this.redis.get(this.keys.session(id));
    return raw ? (JSON.parse(raw) as SessionRecord) : undefined;
  }

  async all(): Promise<SessionRecord[]> {
    const ids = await this.redis.smembers(this.keys.sessions);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.keys.session(id)));
    return raws.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as SessionRecord);
  }

  /** Of these session ids, the ones whose session is gone or lost (its sandbox no longer runs). */
  async ended(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.keys.session(id)));
    return ids.filter((_, i) => {
      const raw = raws[i];
      return !raw || (JSON.parse(raw) as SessionRecord).state === 'lost';
    });
  }

  /**
   * Removes the record; true only for the caller that removed it, so when the API and the
   * reaper race to delete a session exactly one of them destroys its sandbox.
   */
  async remove(id: string): Promise<boolean> {
    const cur = await this.get(id);
    const tag = cur?.nfs?.tag;
    const tx = this.redis.multi().del(this.keys.session(id)).srem(this.keys.sessions, id);
    if (tag) tx.del(nfsTagKey(this.keys, tag));
    // A hibernated session's workspace archive is handed to the retired-blob sweep in the same
    // transaction (storage/retired.ts, due at once): a crash after the record is gone can no
    // longer leave the archive in the blob store with nothing pointing at it.
    if (cur?.hibernatedTo) tx.zadd(this.keys.retiredBlobs(), Date.now(), cur.hibernatedTo);
    const [[, removed] = [null, 0]] = (await tx.exec()) ?? [];
    return removed === 1;
  }

  /**
   * Marks a session lost, unless it was ended meanwhile (XX). Kept as a record, so clients asking
   * about it learn that it was lost and why, not that it never existed.
   */
  async markLost(r: SessionRecord, reason: string, now: number): Promise<SessionRecord | undefined> {
    const lost: SessionRecord = { ...r, state: 'lost', lostReason: reason, lostAt: now };
    return (await this.redis.set(this.keys.session(r.id), JSON.stringify(lost), 'XX')) === 'OK' ? lost : undefined;
  }

  /**
   * Records activity (and optionally a new expiry) unless the session is gone or lost. A touch
   * racing `markLost` can write `running` back; the session reaper marks it lost again in its
   * next round (its sandbox record is gone), so that lasts a second at most.
   */
  async touch(id: string, now: number, expiresAt?: number): Promise<SessionRecord | undefined> {
    let seen: SessionRecord | undefined;
    const r = await this.update(id, (cur) => {
      seen = cur;
      if (cur.state === 'lost') return undefined;
      return { ...cur, lastActivityAt: now, ...(expiresAt !== undefined ? { expiresAt } : {}) };
    });
    return r ?? seen;
  }

  /**
   * Read-modify-write of one record that cannot undo a concurrent change: the write happens only
   * if the record is still exactly what `mutate` saw (compare-and-set in one Lua call), else it
   * is read again. `mutate` returns undefined to leave it. Undefined when the record is gone.
   * Without this a touch that read `running` before a pause would write `running` back after it.
   */
  async update(id: string, mutate: (r: SessionRecord) => SessionRecord | undefined): Promise<SessionRecord | undefined> {
    const key = this.keys.session(id);
    for (;;) {
      const raw = await this.redis.get(key);
      if (!raw) return undefined;
      const next = mutate(JSON.parse(raw) as SessionRecord);
      if (!next) return undefined;
      const ok = await this.redis.eval(CAS, 1, key, raw, JSON.stringify(next));
      if (ok === 1) return next;
    }
  }
}
