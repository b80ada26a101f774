import type { Redis } from 'ioredis';
import { ValidationError } from '../errors.js';
import type { InvocationJob } from '../invocation/contract.js';
import type { Keys } from '../store/keys.js';
import { DEFAULT_TENANT, type Principal } from '../tenancy/principal.js';
import type { Quotas } from '../tenancy/quotas.js';
import type { FunctionService } from './service.js';
import type { FunctionRef, FunctionVersionRecord } from './types.js';

/** How long a replica reuses a function's reserved concurrency on the invoke path (its own changes apply at once). */
const RESERVED_CACHE_MS = 1_000;
/** Lambda's tag limits: 50 per resource, keys 1–128 characters, values up to 256. */
const MAX_TAGS = 50;
const TAG_KEY = /^(?!aws:)[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$/u;
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;

/** Checks tags as Lambda does (InvalidParameterValueException naming the bad one). */
export function checkTags(tags: Record<string, unknown>): Record<string, string> {
  const entries = Object.entries(tags);
  if (entries.length > MAX_TAGS) throw new ValidationError(`a function has at most ${MAX_TAGS} tags; got ${entries.length}`, { field: 'Tags' });
  for (const [k, v] of entries) {
    if (!TAG_KEY.test(k)) throw new ValidationError(`tag key "${k.slice(0, 140)}" must be 1-128 letters, digits, spaces or _.:/=+-@ and not start with "aws:"`, { field: 'Tags' });
    if (typeof v !== 'string' || !TAG_VALUE.test(v)) throw new ValidationError(`the value of tag "${k}" must be a string of at most 256 letters, digits, spaces or _.:/=+-@`, { field: 'Tags' });
  }
  return tags as Record<string, string>;
}

/** What GetAccountSettings reports for a tenant: Kiln's quotas as Lambda's account limits, and its usage. */
export interface AccountSettings {
  concurrentExecutions: number;
  unreservedConcurrentExecutions: number;
  functionCount: number;
  totalCodeSize: number;
}

/**
 * A function's settings that are not part of its versions: reserved concurrency and tags (Lambda
 * keeps both per function, outside its configuration), stored in the function's settings hash and
 * deleted with it (functions/store.ts). Every method finds the function as FunctionService does,
 * so a key reaches only its own tenant's functions (another tenant's: ResourceNotFound, as a
 * missing one); none takes a qualifier, as Lambda takes none for them.
 */
export class FunctionExtras {
  private readonly reservedCache = new Map<string, { value: number | undefined; until: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly functions: FunctionService,
    private readonly quotas: Pick<Quotas, 'limits' | 'admitReserved' | 'releaseReserved'>,
  ) {}

  /**
   * Counts a function invocation against its function's reserved concurrency, if it has one
   * (ReservedConcurrencyExceeded, 429, when at it; 0 refuses all). True when counted: the job is
   * then marked `reserved`, and `releaseJob` uncounts it when it settles (server.ts).
   */
  async admitJob(job: InvocationJob): Promise<boolean> {
    const tenant = job.tenant ?? DEFAULT_TENANT;
    const limit = await this.reserved(tenant, job.function.name);
    if (limit === undefined) return false;
    await this.quotas.admitReserved(tenant, job.function.name, job.template, job.id, limit);
    return true;
  }

  async releaseJob(job: InvocationJob): Promise<void> {
    await this.quotas.releaseReserved(job.tenant ?? DEFAULT_TENANT, job.function.name, job.template, job.id);
  }

  /** The function a settings call names: its $LATEST record, found for the caller. */
  private owner(who: Principal, ref: FunctionRef): Promise<FunctionVersionRecord> {
    return this.functions.get(who, ref);
  }

  async concurrency(who: Principal, ref: FunctionRef): Promise<number | undefined> {
    const fn = await this.owner(who, ref);
    return this.readReserved(fn.tenant, fn.name);
  }

  /**
   * Sets a function's reserved concurrency: 0 to the tenant's executions quota, and the tenant's
   * reservations together may not exceed that quota (Lambda keeps an unreserved share the same way).
   */
  async putConcurrency(who: Principal, ref: FunctionRef, value: unknown): Promise<number> {
    const fn = await this.owner(who, ref);
    const limit = (await this.quotas.limits(fn.tenant)).executions;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > limit) {
      throw new ValidationError(`ReservedConcurrentExecutions must be an integer between 0 and ${limit} (the tenant's executions quota); got ${JSON.stringify(value)?.slice(0, 40)}`, { field: 'ReservedConcurrentExecutions' });
    }
    const others = Object.entries(await this.redis.hgetall(this.keys.fnReserved(fn.tenant)))
      .filter(([name]) => name !== fn.name)
      .reduce((sum, [, n]) => sum + Number(n), 0);
    if (others + value > limit) {
      throw new ValidationError(`Specified ReservedConcurrentExecutions for function decreases the tenant's UnreservedConcurrentExecutions below 0: ${others} are reserved by other functions of ${limit}`, { field: 'ReservedConcurrentExecutions' });
    }
    await this.redis.multi().hset(this.keys.fnSettings(fn.tenant, fn.name), 'concurrency', value).hset(this.keys.fnReserved(fn.tenant), fn.name, value).exec();
    this.reservedCache.delete(`${fn.tenant}/${fn.name}`);
    return value;
  }

  async deleteConcurrency(who: Principal, ref: FunctionRef): Promise<void> {
    const fn = await this.owner(who, ref);
    await this.redis.multi().hdel(this.keys.fnSettings(fn.tenant, fn.name), 'concurrency').hdel(this.keys.fnReserved(fn.tenant), fn.name).exec();
    this.reservedCache.delete(`${fn.tenant}/${fn.name}`);
  }

  /** For the invoke path: a function's reserved concurrency, if any (cached RESERVED_CACHE_MS per replica). */
  async reserved(tenant: string, name: string): Promise<number | undefined> {
    const key = `${tenant}/${name}`;
    const hit = this.reservedCache.get(key);
    if (hit && hit.until > Date.now()) return hit.value;
    const value = await this.readReserved(tenant, name);
    if (this.reservedCache.size >= 10_000) this.reservedCache.clear();
    this.reservedCache.set(key, { value, until: Date.now() + RESERVED_CACHE_MS });
    return value;
  }

  private async readReserved(tenant: string, name: string): Promise<number | undefined> {
    const text = await this.redis.hget(this.keys.fnSettings(tenant, name), 'concurrency');
    return text === null ? undefined : Number(text);
  }

  /** GetAccountSettings for the caller's tenant: its executions quota, what is not reserved of it, its functions and their code. */
  async account(who: Principal): Promise<AccountSettings> {
    const tenant = who.tenant;
    const limit = (await this.quotas.limits(tenant)).executions;
    const reserved = Object.values(await this.redis.hgetall(this.keys.fnReserved(tenant))).reduce((sum, n) => sum + Number(n), 0);
    let functionCount = 0;
    let totalCodeSize = 0;
    let marker: string | undefined;
    do {
      const page = await this.functions.list(who, marker, 1000, tenant);
      for (const r of page.records) {
        functionCount++;
        for (const v of await this.functions.versions(who, { name: r.name, tenant })) totalCodeSize += v.codeSize;
      }
      marker = page.nextMarker;
    } while (marker);
    return { concurrentExecutions: limit, unreservedConcurrentExecutions: Math.max(0, limit - reserved), functionCount, totalCodeSize };
  }

  async tags(who: Principal, ref: FunctionRef): Promise<Record<string, string>> {
    const fn = await this.owner(who, ref);
    return this.readTags(fn.tenant, fn.name);
  }

  /** A function's tags, for GetFunction (the record already found for the caller). */
  async readTags(tenant: string, name: string): Promise<Record<string, string>> {
    const all = await this.redis.hgetall(this.keys.fnSettings(tenant, name));
    const tags: Record<string, string> = {};
    for (const [field, value] of Object.entries(all)) if (field.startsWith('tag:')) tags[field.slice(4)] = value;
    return tags;
  }

  /** Adds or replaces tags (TagResource, CreateFunction's Tags); at most MAX_TAGS in all. */
  async tag(who: Principal, ref: FunctionRef, tags: Record<string, unknown>): Promise<void> {
    const checked = checkTags(tags);
    const fn = await this.owner(who, ref);
    await this.writeTags(fn, checked);
  }

  /** Tags of a function just made (CreateFunction's Tags, checked before it was made). */
  async writeTags(fn: FunctionVersionRecord, tags: Record<string, string>): Promise<void> {
    const entries = Object.entries(tags);
    if (!entries.length) return;
    const existing = await this.readTags(fn.tenant, fn.name);
    const total = new Set([...Object.keys(existing), ...Object.keys(tags)]).size;
    if (total > MAX_TAGS) throw new ValidationError(`a function has at most ${MAX_TAGS} tags; this would make ${total}`, { field: 'Tags' });
    await this.redis.hset(this.keys.fnSettings(fn.tenant, fn.name), ...entries.flatMap(([k, v]) => [`tag:${k}`, v]));
  }

  async untag(who: Principal, ref: FunctionRef, keys: string[]): Promise<void> {
    if (keys.length > MAX_TAGS) throw new ValidationError(`at most ${MAX_TAGS} tag keys per call; got ${keys.length}`, { field: 'TagKeys' });
    for (const k of keys) if (!TAG_KEY.test(k)) throw new ValidationError(`tag key "${k.slice(0, 140)}" is not a valid tag key`, { field: 'TagKeys' });
    const fn = await this.owner(who, ref);
    if (keys.length) await this.redis.hdel(this.keys.fnSettings(fn.tenant, fn.name), ...keys.map((k) => `tag:${k}`));
  }
}
