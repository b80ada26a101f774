import type { Redis } from 'ioredis';
import { KilnError } from '../../errors.js';
import { CLAIM, RELEASE } from './scripts.js';

/** First host uid handed to sandboxes (below it: system and regular users, Debian's first subuid ranges). */
export const UID_BASE = 200_000;
/**
 * Ranges are whole blocks of this many uids. The executor takes a host lease per block
 * (executor/src/sandbox/uid-lease.ts uses the same size), so ranges of different sizes from
 * deployments that do not share a Redis still collide on a block lease instead of overlapping.
 */
export const UID_BLOCK = 1000;
/** Blocks available: uids 200000 to 2199999, far below the 2^31 where Podman's `containers` subuids start here. */
export const UID_MAX_BLOCKS = 2000;

/** A contiguous run of host uids held by one executor, one uid per sandbox slot. */
export interface UidRange {
  firstBlock: number;
  blocks: number;
  /** First host uid of the range (`KILN_SANDBOX_UID_BASE` of the executor). */
  firstUid: number;
  /** Number of uids in the range (blocks × UID_BLOCK). */
  size: number;
}

/** Every block is taken: more executors run on this host than the uid space holds. */
export class UidRangesExhaustedError extends KilnError {
  constructor(executorId: string, uids: number) {
    super('NoUidRange', 503, `no free range of ${uids} host uids for executor ${executorId}: every block of ${UID_BLOCK} uids from ${UID_BASE} is taken; stop idle executors or lower sandboxesPerExecutor`, { executorId }, true);
  }
}

type UidRedis = Redis & {
  kilnUidClaim(key: string, executorId: string, deployment: string, blocks: number, maxBlocks: number, fromBlock: number): Promise<[number, number] | null>;
  kilnUidRelease(key: string, executorId: string, deployment: string): Promise<number>;
};

/**
 * The persistent allocator of host uid ranges for local executors: the only owner of its
 * Redis hash (Lua in scripts.ts). Claims are made under the executor id and the deployment,
 * and survive control-plane restarts; only the claiming deployment can release one.
 *
 * The hash is per host and NOT under a deployment prefix: uids are a host resource, and every
 * deployment on this host that shares this Redis must see every other's claims. Deployments on
 * one host with different Redis servers cannot see each other here; the executor's host lease
 * (executor/src/sandbox/uid-lease.ts) is what keeps them apart.
 */
export class UidRanges {
  private readonly redis: UidRedis;

  constructor(
    redis: Redis,
    /** The hash (Keys.hostUidRanges(hostname)); tests pass one of their own. */
    private readonly key: string,
    private readonly maxBlocks = UID_MAX_BLOCKS,
  ) {
    redis.defineCommand('kilnUidClaim', { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand('kilnUidRelease', { numberOfKeys: 1, lua: RELEASE });
    this.redis = redis as UidRedis;
  }

  /**
   * Claims a range of at least `uids` uids for an executor (rounded up to whole blocks), at or
   * above block `fromBlock`; returns the range it already holds if it has one.
   */
  async claim(executorId: string, deployment: string, uids: number, fromBlock = 0): Promise<UidRange> {
    const blocks = Math.max(1, Math.ceil(uids / UID_BLOCK));
    const got = await this.redis.kilnUidClaim(this.key, executorId, deployment, blocks, this.maxBlocks, fromBlock);
    if (!got) throw new UidRangesExhaustedError(executorId, uids);
    return range(got[0], got[1]);
  }

  /** The range an executor holds and the deployment that claimed it; undefined when none. */
  async get(executorId: string): Promise<{ range: UidRange; deployment: string } | undefined> {
    const held = await this.redis.hget(this.key, `x:${executorId}`);
    const m = held ? /^(\d+):(\d+):(.*)$/.exec(held) : null;
    if (!m) return undefined;
    return { range: range(Number(m[1]), Number(m[2])), deployment: m[3] as string };
  }

  /** Gives an executor's range back; false when it held none or another deployment holds it. */
  async release(executorId: string, deployment: string): Promise<boolean> {
    return (await this.redis.kilnUidRelease(this.key, executorId, deployment)) === 1;
  }
}

function range(firstBlock: number, blocks: number): UidRange {
  return { firstBlock, blocks, firstUid: UID_BASE + firstBlock * UID_BLOCK, size: blocks * UID_BLOCK };
}
