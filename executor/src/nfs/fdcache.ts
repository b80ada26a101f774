/**
 * A small LRU of open file descriptors with leases.
 *
 * Leases matter for safety, not just speed: operations address files as
 * `/proc/self/fd/<n>/<name>`, so an fd must never be closed (and its number
 * reused for some other directory) while an operation is still using it.
 * Evicted or invalidated entries are closed only once their last lease ends.
 * Idle entries are closed after `idleMs` so deleted files do not stay pinned.
 */
import { close } from 'node:fs';

/** A borrowed descriptor; call `release()` exactly once when done. */
export interface FdLease {
  readonly fd: number;
  /** Extra information stored with the fd (e.g. its open flags). */
  readonly info: number;
  release(): void;
}

interface Entry {
  fd: number;
  info: number;
  refs: number;
  lastUsed: number;
  dead: boolean;
}

const closeQuietly = (fd: number): void => close(fd, () => undefined);

export class FdCache {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly capacity: number,
    private readonly idleMs = 5_000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Borrows the cached fd for `key`, if any. */
  get(key: string): FdLease | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.entries.delete(key);
    this.entries.set(key, e);
    return this.lease(e);
  }

  /**
   * Caches a freshly opened fd and returns a lease on it. If another caller
   * raced us and cached one first, ours is closed and theirs is shared.
   */
  put(key: string, fd: number, info = 0): FdLease {
    const existing = this.entries.get(key);
    if (existing && existing.info === info) {
      closeQuietly(fd);
      return this.lease(existing);
    }
    if (existing) this.delete(key);
    const e: Entry = { fd, info, refs: 0, lastUsed: Date.now(), dead: false };
    this.entries.set(key, e);
    // Lease before evicting, so the new entry can never be the one closed.
    const lease = this.lease(e);
    this.evictOverflow();
    this.startTimer();
    return lease;
  }

  /** Drops `key`; its fd closes when the last lease is released. */
  delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.retire(e);
  }

  /** Drops every entry whose key starts with `prefix`. */
  deletePrefix(prefix: string): void {
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.delete(key);
  }

  /** Drops everything (server shutdown or export gone). */
  clear(): void {
    for (const key of [...this.entries.keys()]) this.delete(key);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Closes entries idle for longer than `idleMs`. */
  sweep(now = Date.now()): void {
    for (const [key, e] of this.entries) {
      if (e.refs === 0 && now - e.lastUsed > this.idleMs) this.delete(key);
    }
    if (this.entries.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private lease(e: Entry): FdLease {
    e.refs++;
    e.lastUsed = Date.now();
    let released = false;
    return {
      fd: e.fd,
      info: e.info,
      release: () => {
        if (released) return;
        released = true;
        e.refs--;
        e.lastUsed = Date.now();
        if (e.dead && e.refs === 0) closeQuietly(e.fd);
      },
    };
  }

  private retire(e: Entry): void {
    e.dead = true;
    if (e.refs === 0) closeQuietly(e.fd);
  }

  private evictOverflow(): void {
    if (this.entries.size <= this.capacity) return;
    for (const [key, e] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      // Leased entries are skipped: the cache may briefly exceed capacity instead.
      if (e.refs === 0) this.delete(key);
    }
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sweep(), Math.max(250, this.idleMs / 2));
    this.timer.unref();
  }
}
