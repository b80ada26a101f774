import type { Redis } from 'ioredis';
import type { Keys } from '../store/keys.js';
import type { TrackedReads } from '../redis/tracked-reads.js';
import type { FunctionVersionRecord } from './types.js';

/** Replaces a key's value only if it still holds what the caller read (compare-and-set). */
const CAS = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0`;

/**
 * Creates $LATEST unless the name is taken or the tenant already has ARGV[3] functions, and
 * indexes the name: one step, so creates racing at the tenant's functions quota cannot pass it.
 * KEYS: the record, the tenant's names. Returns {1 created | 0 name taken | -1 over, count before}.
 */
const CREATE = `local n = redis.call('ZCARD', KEYS[2])
if n >= tonumber(ARGV[3]) then return {-1, n} end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return {0, n} end
redis.call('ZADD', KEYS[2], 0, ARGV[2])
return {1, n}`;

/**
 * Deletes a published version unless an alias uses it. KEYS: the versions, the aliases.
 * ARGV: the version. Returns {1 deleted | 0 not, the alias using it or ''}.
 */
const DELETE_VERSION = `for _, text in ipairs(redis.call('HVALS', KEYS[2])) do
  local a = cjson.decode(text)
  if a.functionVersion == ARGV[1] or (type(a.additionalVersionWeights) == 'table' and a.additionalVersionWeights[ARGV[1]] ~= nil) then return {0, a.name} end
end
return {redis.call('HDEL', KEYS[1], ARGV[1]), ''}`;

/**
 * Function records in Redis, per tenant: $LATEST as one JSON string per function, published
 * versions in a hash per function, and a sorted set of each tenant's names for paging. Writes
 * to $LATEST are compare-and-set on the JSON text, so concurrent updates never lose one another
 * silently. Every read takes the tenant from the key it read (records made before tenants store
 * none), so a record can never claim another tenant than the namespace it lives in.
 */
export class FunctionStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /**
     * Serves `invokable` from memory while Redis says the record has not changed (one round
     * trip less on every invocation). Each write here forgets what it wrote once it is done,
     * so this replica reads its own writes; others hear of them from Redis.
     */
    private readonly tracked?: TrackedReads,
  ) {}

  /** After a write of these keys: this replica's cached reads of them are stale. */
  private wrote(...keys: string[]): void {
    for (const key of keys) this.tracked?.forget(key);
  }

  /**
   * The record an invocation runs ($LATEST, or a published version), read through the tracked
   * cache when there is one; what CAS updates read (`latest`) always comes from Redis.
   */
  async invokable(tenant: string, name: string, version: string): Promise<FunctionVersionRecord | undefined> {
    const r = this.tracked;
    const [key, field] = version === '$LATEST' ? [this.keys.fn(tenant, name)] : [this.keys.fnVersions(tenant, name), version];
    const text = field === undefined ? await (r ? r.get(key) : this.redis.get(key)) : await (r ? r.hget(key, field) : this.redis.hget(key, field));
    return text === null ? undefined : this.parse(tenant, text);
  }

  private parse(tenant: string, text: string): FunctionVersionRecord {
    return { ...(JSON.parse(text) as FunctionVersionRecord), tenant };
  }

  /**
   * Stores a new function unless its tenant already has one of that name (`exists`) or has
   * `maxFunctions` functions (`over`, with how many: the functions quota).
   */
  async create(record: FunctionVersionRecord, maxFunctions = Number.MAX_SAFE_INTEGER): Promise<{ outcome: 'created' | 'exists' | 'over'; count: number }> {
    const [code, count] = (await this.redis.eval(CREATE, 2, this.keys.fn(record.tenant, record.name), this.keys.fns(record.tenant), JSON.stringify(record), record.name, maxFunctions)) as [number, number];
    // A miss cached before the create (an invoke of a name that did not exist yet) is stale.
    this.wrote(this.keys.fn(record.tenant, record.name));
    return { outcome: code === 1 ? 'created' : code === 0 ? 'exists' : 'over', count };
  }

  /** How many functions a tenant has (its quota counts them). */
  count(tenant: string): Promise<number> {
    return this.redis.zcard(this.keys.fns(tenant));
  }

  /** $LATEST and the exact text it was read from (for `replace`). */
  async latest(tenant: string, name: string): Promise<{ record: FunctionVersionRecord; text: string } | undefined> {
    const text = await this.redis.get(this.keys.fn(tenant, name));
    return text === null ? undefined : { record: this.parse(tenant, text), text };
  }

  /** Writes $LATEST if nobody changed it since `previousText` was read. */
  async replace(previousText: string, record: FunctionVersionRecord): Promise<boolean> {
    const replaced = (await this.redis.eval(CAS, 1, this.keys.fn(record.tenant, record.name), previousText, JSON.stringify(record))) === 1;
    this.wrote(this.keys.fn(record.tenant, record.name));
    return replaced;
  }

  async version(tenant: string, name: string, version: string): Promise<FunctionVersionRecord | undefined> {
    const text = await this.redis.hget(this.keys.fnVersions(tenant, name), version);
    return text === null ? undefined : this.parse(tenant, text);
  }

  /** Published versions, oldest first. */
  async versions(tenant: string, name: string): Promise<FunctionVersionRecord[]> {
    const all = Object.values(await this.redis.hgetall(this.keys.fnVersions(tenant, name))).map((t) => this.parse(tenant, t));
    return all.sort((a, b) => Number(a.version) - Number(b.version));
  }

  /** Copies a $LATEST record into the next version number. Numbers are never reused. */
  async publish(latest: FunctionVersionRecord): Promise<FunctionVersionRecord> {
    const n = await this.redis.incr(this.keys.fnVersionSeq(latest.tenant, latest.name));
    const record = { ...latest, version: String(n) };
    await this.redis.hset(this.keys.fnVersions(latest.tenant, latest.name), record.version, JSON.stringify(record));
    this.wrote(this.keys.fnVersions(latest.tenant, latest.name));
    return record;
  }

  /**
   * Deletes a published version unless an alias points at it or routes to it (`usedBy` names
   * that alias): one step, so an alias cannot be made to point at it meanwhile (alias-store.ts).
   */
  async deleteVersion(tenant: string, name: string, version: string): Promise<{ deleted: boolean; usedBy?: string }> {
    const [deleted, usedBy] = (await this.redis.eval(DELETE_VERSION, 2, this.keys.fnVersions(tenant, name), this.keys.fnAliases(tenant, name), version)) as [number, string];
    this.wrote(this.keys.fnVersions(tenant, name));
    return { deleted: deleted === 1, ...(usedBy ? { usedBy } : {}) };
  }

  /** Removes the function, its versions, its aliases and its dead letters. */
  async delete(tenant: string, name: string): Promise<void> {
    await this.redis
      .multi()
      .del(this.keys.fn(tenant, name), this.keys.fnVersions(tenant, name), this.keys.fnVersionSeq(tenant, name), this.keys.fnAliases(tenant, name), this.keys.fnDeadLetters(tenant, name))
      .zrem(this.keys.fns(tenant), name)
      // Its function URL configs too: their ids then resolve to nothing (functions/urls.ts).
      .del(this.keys.fnUrls(tenant, name))
      // Its reserved concurrency, tags and event invoke configs (functions/settings.ts).
      .del(this.keys.fnSettings(tenant, name))
      .hdel(this.keys.fnReserved(tenant), name)
      // Its invocation figures (observability/function-stats.ts): a new function of the same name starts with none.
      .del(this.keys.functionStats(tenant, name))
      .exec();
    this.wrote(this.keys.fn(tenant, name), this.keys.fnVersions(tenant, name), this.keys.fnAliases(tenant, name));
  }

  /** Up to `max` of a tenant's functions after `marker` in name order, and the marker of the next page. */
  async list(tenant: string, marker: string | undefined, max: number): Promise<{ records: FunctionVersionRecord[]; nextMarker?: string }> {
    const names = await this.redis.zrangebylex(this.keys.fns(tenant), marker ? `(${marker}` : '-', '+', 'LIMIT', 0, max + 1);
    const page = names.slice(0, max);
    const texts = page.length ? await this.redis.mget(page.map((n) => this.keys.fn(tenant, n))) : [];
    // A name whose record vanished was deleted between the two reads; it is skipped.
    const records = texts.filter((t): t is string => t !== null).map((t) => this.parse(tenant, t));
    return { records, ...(names.length > max && page.length ? { nextMarker: page[page.length - 1] } : {}) };
  }
}
