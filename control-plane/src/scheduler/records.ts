import type { Redis } from 'ioredis';
import type { ExecutorHandle } from '../platforms/platform.js';
import type { Keys } from '../store/keys.js';
import { defineLuaCommands } from './lua.js';

/**
 * A sandbox stuck in `booting` longer than this was left by a control plane that died, or by a
 * reservation whose answer Redis lost as it went down (the caller never learnt the id). A boot
 * takes well under a second and its createSandbox call gives up at 15 s, so 20 s is past any
 * boot still in progress; every slot stuck this way holds up the template's queue until then.
 */
export const BOOT_LIMIT_MS = 20_000;
/** A sandbox being reaped is retried by any replica if its reaper did not finish in this time. */
export const REAP_LEASE_MS = 60_000;

export type SandboxState = 'booting' | 'idle' | 'busy' | 'reaping';

/** A sandbox's Redis record. */
export interface SandboxRecord {
  id: string;
  executor: string;
  template: string;
  runner: string;
  state: SandboxState;
  /** Function key of the loaded instance; empty for a warm (pre-booted) sandbox. */
  fn: string;
  createdAt: number;
  lastUsed: number;
  leaseUntil: number;
}

/** An idle sandbox that `acquire` leased. */
export interface IdleHit {
  sandboxId: string;
  executorId: string;
  startType: 'hot' | 'warm';
}

/** What `dropExecutor` did. */
export interface DroppedExecutor {
  /** True for the one caller (of every replica) that took the executor out of placement. */
  dropped: boolean;
  /** Ids of the sandbox records it forgot. */
  forgotten: string[];
}

/**
 * True while a record's holder may still be alive (another replica, or this one before a
 * restart): idle, leased and not past its lease, or booting for less than a boot can take. The
 * rule `reclaim-1.lua` applies, for start-up reconciliation, which also drops half-reaped ones.
 */
export function stillHeld(r: Pick<SandboxRecord, 'state' | 'leaseUntil' | 'createdAt'>, now: number): boolean {
  if (r.state === 'idle') return true;
  if (r.state === 'busy') return r.leaseUntil >= now;
  if (r.state === 'booting') return r.createdAt >= now - BOOT_LIMIT_MS;
  return false;
}

/** The scripts in lua/ as ioredis commands; argument order is documented in each file. */
type LuaRedis = Redis & {
  kilnAcquire(hot: string, warm: string, sbxPrefix: string, owner: string, now: number, leaseMs: number): Promise<[string, string, 'hot' | 'warm'] | null>;
  kilnRelease(sandbox: string, list: string, owner: string, now: number, fn: string, id: string): Promise<number>;
  kilnReserve(
    executors: string,
    set: string,
    sandbox: string,
    perExec: number,
    max: number,
    id: string,
    template: string,
    runner: string,
    owner: string,
    now: number,
  ): Promise<string | null>;
  kilnBooted(sandbox: string, owner: string, leaseUntil: number): Promise<number>;
  kilnExtend(sandbox: string, owner: string, leaseUntil: number): Promise<number>;
  kilnForget(sandbox: string, set: string, executors: string, id: string, hotPrefix: string, warmPrefix: string): Promise<number>;
  kilnReap(
    sandbox: string,
    list: string,
    id: string,
    fn: string,
    lastUsedBefore: number,
    createdBefore: number,
    now: number,
    reapMs: number,
  ): Promise<string | null>;
  kilnReclaim(sandbox: string, now: number, bootedBefore: number, reapMs: number): Promise<string | null>;
  kilnRetireEmpty(executors: string, id: string): Promise<number>;
  kilnEvict(set: string, sbxPrefix: string, hotPrefix: string, now: number, reapMs: number, usedBefore: number): Promise<[string, string] | null>;
  kilnPrune(list: string, sbxPrefix: string, hotPrefix: string, warmPrefix: string): Promise<number>;
  kilnDropExecutor(
    executors: string,
    set: string,
    executor: string,
    id: string,
    sbxPrefix: string,
    hotPrefix: string,
    warmPrefix: string,
  ): Promise<Array<number | string>>;
};

/**
 * The one owner of the scheduler's state in Redis: sandbox records (`sbx:*`), each template's
 * sandbox set, warm and hot idle lists, executor records and placement scores, and health-check
 * failure counts. Every change that others could race goes through a Lua script in `lua/`, so
 * several control-plane replicas sharing one Redis never lease one sandbox twice. Nothing
 * outside this class spells these keys; everything else asks it.
 *
 * Executor handles are cached in memory (they never change while an executor lives).
 */
export class SandboxRecords {
  private readonly redis: LuaRedis;
  private readonly handles = new Map<string, ExecutorHandle>();

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    defineLuaCommands(redis);
    this.redis = redis as LuaRedis;
  }

  // ---- sandboxes -------------------------------------------------------------------------

  /** Leases an idle instance of `functionKey` (hot), else a warm sandbox of `runner`. */
  async acquire(template: string, runner: string, functionKey: string, owner: string, now: number, leaseMs: number): Promise<IdleHit | undefined> {
    const hit = await this.redis.kilnAcquire(
      this.keys.hot(template, functionKey),
      this.keys.warm(template, runner),
      this.keys.sandbox(''),
      owner,
      now,
      leaseMs,
    );
    return hit ? { sandboxId: hit[0], executorId: hit[1], startType: hit[2] } : undefined;
  }

  /**
   * Reserves a slot for a new sandbox on the least-loaded executor with room, recording it as
   * `booting` and owned by `owner`; the executor id, or undefined when none has room.
   */
  async reserve(
    template: { name: string; pool: { sandboxesPerExecutor: number; maxSandboxes: number } },
    runner: string,
    sandboxId: string,
    owner: string,
    now: number,
  ): Promise<string | undefined> {
    const ex = await this.redis.kilnReserve(
      this.keys.executors(template.name),
      this.keys.sandboxes(template.name),
      this.keys.sandbox(sandboxId),
      template.pool.sandboxesPerExecutor,
      template.pool.maxSandboxes,
      sandboxId,
      template.name,
      runner,
      owner,
      now,
    );
    return ex ?? undefined;
  }

  /** A reserved sandbox booted: leased to its owner until `leaseUntil`. False if its record went meanwhile. */
  async booted(sandboxId: string, owner: string, leaseUntil: number): Promise<boolean> {
    return (await this.redis.kilnBooted(this.keys.sandbox(sandboxId), owner, leaseUntil)) === 1;
  }

  /** Puts a leased sandbox on its idle list (hot for `functionKey`, warm when empty). False if no longer the owner's. */
  async release(lease: { sandboxId: string; template: string; runner: string; owner: string }, functionKey: string, now = Date.now()): Promise<boolean> {
    const list = functionKey ? this.keys.hot(lease.template, functionKey) : this.keys.warm(lease.template, lease.runner);
    return (await this.redis.kilnRelease(this.keys.sandbox(lease.sandboxId), list, lease.owner, now, functionKey, lease.sandboxId)) === 1;
  }

  /** Moves the end of a lease (sessions kept alive). False when the record is gone or not the owner's. */
  async extend(sandboxId: string, owner: string, leaseUntil: number): Promise<boolean> {
    return (await this.redis.kilnExtend(this.keys.sandbox(sandboxId), owner, leaseUntil)) === 1;
  }

  /** Drops a sandbox's record, takes it off every list and frees its executor slot. */
  async forget(template: string, sandboxId: string): Promise<boolean> {
    const n = await this.redis.kilnForget(
      this.keys.sandbox(sandboxId),
      this.keys.sandboxes(template),
      this.keys.executors(template),
      sandboxId,
      this.keys.hot(template, ''),
      this.keys.warm(template, ''),
    );
    return n === 1;
  }

  /**
   * Takes an idle sandbox out of service (`reaping`) if it is still idle with the same function
   * and last used before `lastUsedBefore` or made before `createdBefore`; its executor id, or
   * undefined when it was leased meanwhile. The caller kills it, then `forget`s it.
   */
  async reap(r: SandboxRecord, lastUsedBefore: number, createdBefore: number, now = Date.now()): Promise<string | undefined> {
    const list = r.fn ? this.keys.hot(r.template, r.fn) : this.keys.warm(r.template, r.runner);
    return (await this.redis.kilnReap(this.keys.sandbox(r.id), list, r.id, r.fn, lastUsedBefore, createdBefore, now, REAP_LEASE_MS)) ?? undefined;
  }

  /** Takes back a lease whose owner vanished (see `stillHeld`); its executor id, or undefined. */
  async reclaim(sandboxId: string, now = Date.now()): Promise<string | undefined> {
    return (await this.redis.kilnReclaim(this.keys.sandbox(sandboxId), now, now - BOOT_LIMIT_MS, REAP_LEASE_MS)) ?? undefined;
  }

  /** Takes the least recently used idle instance of a template (used before `usedBefore`) out of service. */
  async evict(template: string, now: number, usedBefore: number): Promise<{ sandboxId: string; executorId: string } | undefined> {
    const hit = await this.redis.kilnEvict(this.keys.sandboxes(template), this.keys.sandbox(''), this.keys.hot(template, ''), now, REAP_LEASE_MS, usedBefore);
    return hit ? { sandboxId: hit[0], executorId: hit[1] } : undefined;
  }

  /**
   * Every sandbox record of a template, read in one pipeline. A snapshot: records change under
   * it, so whoever acts on one re-checks it inside a script (reap, reclaim, forget).
   */
  async snapshot(template: string): Promise<SandboxRecord[]> {
    const ids = await this.redis.smembers(this.keys.sandboxes(template));
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(this.keys.sandbox(id));
    const out: SandboxRecord[] = [];
    for (const [err, raw] of (await pipe.exec()) ?? []) {
      const r = raw as Record<string, string> | null;
      if (err || !r?.id) continue;
      out.push({
        id: r.id,
        executor: r.executor ?? '',
        template: r.template ?? template,
        runner: r.runner ?? '',
        state: (r.state ?? 'booting') as SandboxState,
        fn: r.fn ?? '',
        createdAt: Number(r.createdAt ?? 0),
        lastUsed: Number(r.lastUsed ?? 0),
        leaseUntil: Number(r.leaseUntil ?? 0),
      });
    }
    return out;
  }

  /** The ids among `sandboxIds` that still have a record. */
  async existing(sandboxIds: string[]): Promise<Set<string>> {
    if (sandboxIds.length === 0) return new Set();
    const pipe = this.redis.pipeline();
    for (const id of sandboxIds) pipe.exists(this.keys.sandbox(id));
    const res = (await pipe.exec()) ?? [];
    return new Set(sandboxIds.filter((_id, i) => res[i]?.[1] === 1));
  }

  /**
   * Number of warm (idle, no function) sandboxes of a template for a runner: the warm list,
   * with ids that do not belong on it dropped first, so a stale id never counts as a sandbox.
   */
  warmCount(template: string, runner: string): Promise<number> {
    return this.redis.kilnPrune(this.keys.warm(template, runner), this.keys.sandbox(''), this.keys.hot(template, ''), this.keys.warm(template, ''));
  }

  /** Prunes every warm and hot list of a template (at start-up); returns how many ids are left on them. */
  async pruneIdleLists(template: string): Promise<number> {
    let left = 0;
    for (const pattern of [this.keys.warm(template, '*'), this.keys.hot(template, '*')]) {
      let cursor = '0';
      do {
        const [next, lists] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        for (const list of lists) left += await this.redis.kilnPrune(list, this.keys.sandbox(''), this.keys.hot(template, ''), this.keys.warm(template, ''));
      } while (cursor !== '0');
    }
    return left;
  }

  // ---- executors -------------------------------------------------------------------------

  /** Records a new executor with `sandboxes` sandboxes (kept if already there). */
  async addExecutor(handle: ExecutorHandle, sandboxes = 0): Promise<void> {
    await this.redis
      .multi()
      .set(this.keys.executor(handle.id), JSON.stringify(handle))
      .zadd(this.keys.executors(handle.template), 'NX', sandboxes, handle.id)
      .exec();
    this.handles.set(handle.id, handle);
  }

  /** Records an executor found running at start-up, holding exactly `sandboxes` known sandboxes. */
  async adoptExecutor(handle: ExecutorHandle, sandboxes: number): Promise<void> {
    await this.redis.multi().set(this.keys.executor(handle.id), JSON.stringify(handle)).zadd(this.keys.executors(handle.template), sandboxes, handle.id).exec();
    this.handles.set(handle.id, handle);
  }

  /** How to reach an executor; undefined once it is gone from the records. */
  async executor(id: string): Promise<ExecutorHandle | undefined> {
    const cached = this.handles.get(id);
    if (cached) return cached;
    const raw = await this.redis.get(this.keys.executor(id));
    if (!raw) return undefined;
    const handle = JSON.parse(raw) as ExecutorHandle;
    this.handles.set(id, handle);
    return handle;
  }

  /** Executors of a template in placement. */
  executorIds(template: string): Promise<string[]> {
    return this.redis.zrange(this.keys.executors(template), 0, -1);
  }

  /** Executors of a template in placement, with their sandbox counts. */
  async executorLoad(template: string): Promise<Array<{ id: string; sandboxes: number }>> {
    const flat = await this.redis.zrange(this.keys.executors(template), 0, -1, 'WITHSCORES');
    const out: Array<{ id: string; sandboxes: number }> = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ id: flat[i] as string, sandboxes: Number(flat[i + 1]) });
    return out;
  }

  /** Removes an executor's record and placement (it was stopped). */
  async removeExecutor(handle: { id: string; template: string }): Promise<void> {
    await this.redis
      .multi()
      .del(this.keys.executor(handle.id))
      .zrem(this.keys.executors(handle.template), handle.id)
      .hdel(this.keys.executorFailures(handle.template), handle.id)
      .exec();
    this.handles.delete(handle.id);
  }

  /**
   * Drops an executor that is gone: out of placement, its record deleted and every sandbox it held
   * forgotten, in one step. `dropped` tells the one caller that did it (it logs and stops it).
   */
  async dropExecutor(template: string, executorId: string): Promise<DroppedExecutor> {
    const [dropped, ...forgotten] = await this.redis.kilnDropExecutor(
      this.keys.executors(template),
      this.keys.sandboxes(template),
      this.keys.executor(executorId),
      executorId,
      this.keys.sandbox(''),
      this.keys.hot(template, ''),
      this.keys.warm(template, ''),
    );
    this.handles.delete(executorId);
    await this.redis.hdel(this.keys.executorFailures(template), executorId);
    return { dropped: dropped === 1, forgotten: forgotten.map(String) };
  }

  /** Takes an executor out of placement if it holds no sandbox; true when it did. */
  async retireEmpty(template: string, executorId: string): Promise<boolean> {
    return (await this.redis.kilnRetireEmpty(this.keys.executors(template), executorId)) === 1;
  }

  /** Counts a failed health check; the count is shared by every replica's keeper. */
  healthFailed(template: string, executorId: string): Promise<number> {
    return this.redis.hincrby(this.keys.executorFailures(template), executorId, 1);
  }

  /** The executor answered: its failed checks start again from zero. */
  async healthPassed(template: string, executorId: string): Promise<void> {
    await this.redis.hdel(this.keys.executorFailures(template), executorId);
  }

  // ---- templates -------------------------------------------------------------------------

  /** Deletes every record of a deleted template (its executors were stopped first). */
  async purge(template: string): Promise<void> {
    for (const r of await this.snapshot(template)) {
      await this.redis.del(this.keys.sandbox(r.id), r.fn ? this.keys.hot(template, r.fn) : this.keys.warm(template, r.runner));
    }
    for (const id of await this.executorIds(template)) {
      await this.redis.del(this.keys.executor(id));
      this.handles.delete(id);
    }
    await this.redis.del(this.keys.sandboxes(template), this.keys.executors(template), this.keys.executorFailures(template));
  }
}

/** What readers outside the scheduler need to reach executors (health route, NFS gateway). */
export type ExecutorDirectory = Pick<SandboxRecords, 'executor' | 'executorIds'>;
