import type { Redis } from 'ioredis';
import { log } from '../log.js';

/** Redis's channel for invalidations redirected to another connection (RESP2 clients). */
const INVALIDATE_CHANNEL = '__redis__:invalidate';

/**
 * Reads of keys that are read on every invocation and written rarely (a function's record),
 * served from memory for as long as Redis says they have not changed: server-assisted
 * client-side caching (CLIENT TRACKING, Redis 6+). Redis remembers which keys the `reader`
 * connection read and, when any client changes, deletes, expires or flushes one of them, sends
 * its name to the `invalidations` connection; the entry is dropped on arrival. What this replica
 * writes itself it `forget`s before the write's caller goes on, so a replica reads its own
 * writes; another replica's write reaches it as soon as the invalidation message does.
 *
 * Nothing is served from memory unless tracking is known to be on: both connections up and
 * the redirect set since their last (re)connection. Either one dropping empties the cache (its
 * invalidations may have been lost with the connection) and reads go to Redis, on `fallback`,
 * until both are back. A read that an invalidation (or a forget) overtakes while it is in
 * flight is answered but not kept: its value may be the one the write replaced. The cache holds
 * at most `maxEntries` values; the oldest go first.
 */
export class TrackedReads {
  private readonly cache = new Map<string, string | null>();
  /** The cache entries of each Redis key (a hash's fields each have one). */
  private readonly entries = new Map<string, Set<string>>();
  /** Reads in flight per Redis key, and the keys changed while one was. */
  private readonly inFlight = new Map<string, number>();
  private readonly overtaken = new Set<string>();
  private tracking = false;
  /** Bumped whenever tracking stops: reads begun before must not fill the cache after. */
  private epoch = 0;
  private setup: Promise<void> | undefined;
  private again = false;
  /** The invalidations connection's id while it is subscribed (it changes when it reconnects). */
  private subscriberId: number | undefined;
  /** Bumped when the invalidations connection drops: an id asked before belongs to the old one. */
  private invalidationsConnection = 0;
  private closed = false;

  constructor(
    private readonly reader: Redis,
    private readonly invalidations: Redis,
    private readonly fallback: Redis,
    private readonly maxEntries = 10_000,
  ) {
    // `invalidations` must not resubscribe by itself (autoResubscribe: false): `enable` asks its
    // new id first, then subscribes, then points the reader's tracking at it.
    for (const conn of [reader, invalidations]) {
      conn.on('close', () => this.stop());
      conn.on('ready', () => void this.enable());
    }
    invalidations.on('close', () => {
      this.subscriberId = undefined;
      this.invalidationsConnection++;
    });
    invalidations.on('messageBuffer', (channel: Buffer, keys: Buffer[] | null) => {
      if (channel.toString() !== INVALIDATE_CHANNEL) return;
      if (keys === null) this.clear(); // FLUSHDB / FLUSHALL
      else for (const key of keys) this.forget(key.toString());
    });
  }

  /** Turns tracking on (again, after a reconnection); until it is, reads go to Redis. */
  enable(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.setup) {
      // The other connection came up while the first one's setup ran: run it once more after.
      this.again = true;
      return this.setup;
    }
    this.setup = this.turnOn().finally(() => {
      this.setup = undefined;
      if (this.again) {
        this.again = false;
        void this.enable();
      }
    });
    return this.setup;
  }

  private async turnOn(): Promise<void> {
    if (this.tracking || this.reader.status !== 'ready' || this.invalidations.status !== 'ready') return;
    const epoch = this.epoch;
    try {
      if (this.subscriberId === undefined) {
        // Asked before subscribing: a subscribed RESP2 connection may only (un)subscribe. The id
        // is kept unless that connection itself dropped meanwhile (the reader dropping is no
        // reason to forget it: the connection stays subscribed and could not be asked again).
        const connection = this.invalidationsConnection;
        const id = await this.invalidations.client('ID');
        await this.invalidations.subscribe(INVALIDATE_CHANNEL);
        if (connection !== this.invalidationsConnection) return;
        this.subscriberId = id;
        if (epoch !== this.epoch) return;
      }
      await this.reader.client('TRACKING', 'ON', 'REDIRECT', String(this.subscriberId));
      // A connection that dropped meanwhile stopped it again: its next 'ready' retries.
      if (epoch === this.epoch) this.tracking = true;
    } catch (err) {
      // A Redis without CLIENT TRACKING (older than 6, or a proxy that refuses it): no cache.
      log('warn', 'Redis client-side caching is off: function reads go to Redis', { error: (err as Error).message });
    }
  }

  /** A string key's value (null when it does not exist). */
  get(key: string): Promise<string | null> {
    return this.read(key, key, (conn) => conn.get(key));
  }

  /** A hash field's value (null when either does not exist). */
  hget(key: string, field: string): Promise<string | null> {
    return this.read(key, `${key}\0${field}`, (conn) => conn.hget(key, field));
  }

  /** Whether reads are served from memory now (tracking is on). */
  get active(): boolean {
    return this.tracking;
  }

  /** The id of the connection invalidations come on, while it is subscribed. */
  get subscriber(): number | undefined {
    return this.subscriberId;
  }

  /** How many values are held. */
  get size(): number {
    return this.cache.size;
  }

  /** Drops a key's entries: Redis said it changed, or this replica just wrote it. */
  forget(key: string): void {
    for (const entry of this.entries.get(key) ?? []) this.cache.delete(entry);
    this.entries.delete(key);
    if (this.inFlight.has(key)) this.overtaken.add(key);
  }

  /** Stops caching and closes both connections (they are this cache's own). */
  async close(): Promise<void> {
    this.closed = true;
    this.stop();
    await Promise.all([this.reader.quit(), this.invalidations.quit()].map((p) => p.catch(() => undefined)));
  }

  private async read(key: string, entry: string, fetch: (conn: Redis) => Promise<string | null>): Promise<string | null> {
    if (this.tracking && this.cache.has(entry)) return this.cache.get(entry) as string | null;
    if (!this.tracking) return fetch(this.fallback);
    const epoch = this.epoch;
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    try {
      const value = await fetch(this.reader);
      if (this.tracking && epoch === this.epoch && !this.overtaken.has(key)) this.keep(key, entry, value);
      return value;
    } finally {
      const left = (this.inFlight.get(key) ?? 1) - 1;
      if (left > 0) this.inFlight.set(key, left);
      else {
        this.inFlight.delete(key);
        this.overtaken.delete(key);
      }
    }
  }

  private keep(key: string, entry: string, value: string | null): void {
    if (!this.cache.has(entry) && this.cache.size >= this.maxEntries) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
      const of = oldest.split('\0')[0] as string;
      const set = this.entries.get(of);
      set?.delete(oldest);
      // An emptied set goes too: a client naming ever new functions must not grow this map.
      if (set?.size === 0) this.entries.delete(of);
    }
    this.cache.set(entry, value);
    let set = this.entries.get(key);
    if (!set) this.entries.set(key, (set = new Set()));
    set.add(entry);
  }

  private stop(): void {
    this.tracking = false;
    this.epoch++;
    this.clear();
  }

  private clear(): void {
    this.cache.clear();
    this.entries.clear();
    for (const key of this.inFlight.keys()) this.overtaken.add(key);
  }
}
