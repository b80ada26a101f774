import { log, withoutLogContext } from '../log.js';
import { throughRedisOutage } from '../redis/outage.js';
import type { Lease, Scheduler } from './scheduler.js';
import type { PoolSignals } from './signals.js';

/**
 * How long a finished lease waits on this replica for the next job of its function (the
 * default of KILN_LEASE_HOLD_MS). Measured with 32 closed-loop clients on 32 sandboxes: 5 ms
 * caught 4-10% of next jobs, 20 ms 90%, 50 ms 98% (a client's next request comes back to
 * "its" sandbox after ~15 ms). Every held lease is a sandbox other work cannot use meanwhile.
 */
export const DEFAULT_HOLD_MS = 20;

interface Parked {
  lease: Lease;
  functionKey: string;
  parkedAt: number;
}

/**
 * Hands a just-finished lease straight to this replica's next job of the same function, in
 * memory, instead of releasing it to Redis and leasing it back a moment later. Under load a
 * hot function's next job arrives within a few milliseconds, so most jobs then skip both Lua
 * scripts: two Redis round trips and two wake-ups of Redis on every invocation.
 *
 * A parked lease stays `busy` and owned by this replica in Redis, so it can never be leased
 * twice; it is released after `holdMs` to 2 × `holdMs` if no job took it (other replicas, the
 * keeper's reaping and eviction see it idle from then on), or at once when the template runs
 * out of room (`flush`). A lease is handed on only while enough of its Redis lease time is
 * left for the new job; after that it goes back through Redis like any other.
 */
export class LeaseCache {
  /** Parked leases by template and function key, most recently parked last. */
  private readonly parked = new Map<string, Parked[]>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Sandboxes on their way back to Redis: still `busy` there until the release lands, but idle. */
  private readonly releasing = new Set<string>();

  /**
   * With `signals`, a request that finds its template full first gets the leases parked here
   * back (one may then be evicted for it) instead of waiting out the hold.
   */
  constructor(
    private readonly scheduler: Pick<Scheduler, 'release'>,
    private readonly holdMs = DEFAULT_HOLD_MS,
    signals?: Pick<PoolSignals, 'onDemand'>,
  ) {
    signals?.onDemand((t) => this.flush(t.name));
  }

  private static key(template: string, functionKey: string): string {
    return `${template}\0${functionKey}`;
  }

  /**
   * A parked lease of `functionKey` on `template` with at least `needMs` of lease time left,
   * as a hot start, or undefined (the caller leases through Redis).
   */
  take(template: string, functionKey: string, needMs: number): Lease | undefined {
    const key = LeaseCache.key(template, functionKey);
    const list = this.parked.get(key);
    if (!list) return undefined;
    const now = Date.now();
    let found: Lease | undefined;
    while (!found && list.length) {
      // The most recently used sandbox first: its caches are the warmest.
      const p = list.pop() as Parked;
      if (p.lease.leaseUntil - now >= needMs) {
        found = { ...p.lease, startType: 'hot' };
      } else {
        this.release(p);
      }
    }
    if (!list.length) this.parked.delete(key);
    return found;
  }

  /** Keeps a finished lease for the next job of `functionKey`. */
  park(lease: Lease, functionKey: string): void {
    if (this.holdMs === 0) {
      this.release({ lease, functionKey, parkedAt: 0 });
      return;
    }
    const key = LeaseCache.key(lease.template, functionKey);
    let list = this.parked.get(key);
    if (!list) this.parked.set(key, (list = []));
    list.push({ lease, functionKey, parkedAt: Date.now() });
    // The sweep releases every tenant's parked sandboxes: not in this job's log context.
    this.sweeper ??= withoutLogContext(() => setTimeout(() => this.sweep(), this.holdMs));
  }

  /**
   * True while the sandbox waits here for its function's next job, or is being released to
   * Redis (idle, though Redis says busy: metrics count it as idle). A scan, for scrapes: the hot path keeps no index for it.
   */
  holds(sandboxId: string): boolean {
    if (this.releasing.has(sandboxId)) return true;
    for (const list of this.parked.values()) if (list.some((p) => p.lease.sandboxId === sandboxId)) return true;
    return false;
  }

  /**
   * Releases the parked leases of `template` (every template when omitted) now: at shutdown,
   * when a template is removed, and when a job finds no room, so that it can evict one of them
   * instead of waiting out the hold.
   */
  flush(template?: string): void {
    for (const [key, list] of this.parked) {
      if (template !== undefined && (list[0] as Parked).lease.template !== template) continue;
      for (const p of list) this.release(p);
      this.parked.delete(key);
    }
    if (this.parked.size === 0) {
      clearTimeout(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** Releases the leases parked for longer than holdMs; runs while any are parked. */
  private sweep(): void {
    this.sweeper = undefined;
    const cutoff = Date.now() - this.holdMs;
    for (const [key, list] of this.parked) {
      // Oldest first: everything before the first young entry has waited long enough.
      let n = 0;
      while (n < list.length && (list[n] as Parked).parkedAt <= cutoff) this.release(list[n++] as Parked);
      if (n === list.length) this.parked.delete(key);
      else if (n > 0) list.splice(0, n);
    }
    if (this.parked.size > 0) this.sweeper = setTimeout(() => this.sweep(), this.holdMs);
  }

  /**
   * Gives the sandbox back to Redis without waiting: this replica's next acquire goes out on
   * the same connection after it, so Redis has run the release by then. If it fails (Redis
   * gone), it is tried again while the lease lasts; after that the keeper reclaims the sandbox.
   */
  private release(p: Parked): void {
    const id = p.lease.sandboxId;
    this.releasing.add(id);
    // Redis away for a moment: tried again while the lease lasts, so the sandbox is back in the
    // pool as soon as Redis is, not only once the keeper reclaims its lapsed lease (with every
    // sandbox of a template released during an outage, its jobs would wait that long).
    throughRedisOutage(() => this.scheduler.release(p.lease, p.functionKey), p.lease.leaseUntil)
      .catch((err: unknown) => log('warn', 'could not release a sandbox; the keeper reclaims it when its lease runs out', { sandboxId: id, error: String(err) }))
      .finally(() => this.releasing.delete(id));
  }

}
