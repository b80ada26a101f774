import type { Redis } from 'ioredis';
import { ACQUIRE, EVICT, FORGET, RECLAIM, REAP, RELEASE, RESERVE, RETIRE_EMPTY } from './scripts.js';
import type { StartType } from './scheduler.js';

/**
 * The scheduler's Lua scripts as ioredis commands (EVALSHA, falling back to EVAL once per
 * connection). Key and argument order are documented beside each script in scripts.ts.
 */
export type SchedulerRedis = Redis & {
  kilnAcquire(hot: string, warm: string, prefix: string, owner: string, now: number, leaseMs: number): Promise<[string, string, StartType] | null>;
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
  kilnForget(sandbox: string, set: string, executors: string, id: string): Promise<number>;
  kilnEvict(set: string, prefix: string, template: string, now: number, reapMs: number, usedBefore: number): Promise<[string, string] | null>;
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
};

const COMMANDS: Record<string, { numberOfKeys: number; lua: string }> = {
  kilnAcquire: { numberOfKeys: 2, lua: ACQUIRE },
  kilnRelease: { numberOfKeys: 2, lua: RELEASE },
  kilnReserve: { numberOfKeys: 3, lua: RESERVE },
  kilnForget: { numberOfKeys: 3, lua: FORGET },
  kilnEvict: { numberOfKeys: 1, lua: EVICT },
  kilnReap: { numberOfKeys: 2, lua: REAP },
  kilnReclaim: { numberOfKeys: 1, lua: RECLAIM },
  kilnRetireEmpty: { numberOfKeys: 1, lua: RETIRE_EMPTY },
};

/**
 * Defines every scheduler command on a connection and returns it typed with them. Safe to
 * call more than once on one connection (the Scheduler and the Reaper share it): ioredis
 * replaces a definition with the same one.
 */
export function schedulerRedis(redis: Redis): SchedulerRedis {
  for (const [name, def] of Object.entries(COMMANDS)) redis.defineCommand(name, def);
  return redis as SchedulerRedis;
}
