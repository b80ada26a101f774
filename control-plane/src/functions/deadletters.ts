import type { Redis } from 'ioredis';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import type { Keys } from '../store/keys.js';
import { DEFAULT_TENANT } from '../tenancy/principal.js';
import type { DeadLetter } from './types.js';

/** A function's dead letters are its tenant's: every method names the tenant and the function. */
interface Owned {
  tenant: string;
  name: string;
}

/** Newest entries kept per function; older ones are dropped so a broken function cannot fill Redis. */
const MAX_PER_FUNCTION = 1000;

/**
 * Async invocations that failed every attempt, per function of a tenant, in a Redis hash (id → entry).
 * Lambda would send these to an SQS queue or SNS topic; here they stay readable and
 * replayable over REST until replayed or the function is deleted.
 */
export class DeadLetterStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Keeps the last attempt's error and logs (the record), so the failure can be read without a replay. */
  async add(job: InvocationJob, record: ExecutionRecord, attempts: number): Promise<void> {
    // The job's tenant is the function's (invoker.ts); jobs queued before tenants have none.
    const fn = { tenant: job.tenant ?? DEFAULT_TENANT, name: job.function.name };
    const entry: DeadLetter = {
      id: job.id,
      tenant: fn.tenant,
      functionName: fn.name,
      qualifier: job.function.version,
      event: job.event,
      error: record.error ?? { errorType: 'Unknown', errorMessage: `invocation ${record.status}`, stackTrace: [] },
      logs: record.logs,
      ...(record.logsTruncated ? { logsTruncated: true } : {}),
      attempts,
      failedAt: new Date().toISOString(),
    };
    const key = this.keys.fnDeadLetters(fn.tenant, fn.name);
    await this.redis.hset(key, entry.id, JSON.stringify(entry));
    if ((await this.redis.hlen(key)) > MAX_PER_FUNCTION) {
      const oldest = (await this.list(fn)).slice(MAX_PER_FUNCTION).map((e) => e.id);
      if (oldest.length) await this.redis.hdel(key, ...oldest);
    }
  }

  /** Newest first. */
  async list(fn: Owned): Promise<DeadLetter[]> {
    const all = Object.values(await this.redis.hgetall(this.keys.fnDeadLetters(fn.tenant, fn.name))).map((t) => ({ ...(JSON.parse(t) as DeadLetter), tenant: fn.tenant }));
    return all.sort((a, b) => b.failedAt.localeCompare(a.failedAt));
  }

  /** Removes and returns an entry; undefined when it does not exist (or another caller took it). */
  async take(fn: Owned, id: string): Promise<DeadLetter | undefined> {
    const key = this.keys.fnDeadLetters(fn.tenant, fn.name);
    const [[, text], [, removed]] = (await this.redis.multi().hget(key, id).hdel(key, id).exec()) as [[null, string | null], [null, number]];
    return text !== null && removed === 1 ? { ...(JSON.parse(text) as DeadLetter), tenant: fn.tenant } : undefined;
  }

  /** Puts back an entry whose replay could not be queued. */
  async restore(entry: DeadLetter): Promise<void> {
    await this.redis.hset(this.keys.fnDeadLetters(entry.tenant ?? DEFAULT_TENANT, entry.functionName), entry.id, JSON.stringify(entry));
  }
}
