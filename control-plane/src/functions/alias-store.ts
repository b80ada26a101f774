import type { Redis } from 'ioredis';
import type { Keys } from '../store/keys.js';
import type { TrackedReads } from '../redis/tracked-reads.js';
import type { AliasRecord } from './types.js';

/**
 * Writes an alias, in one step with the checks that make it valid: the function exists, every
 * published version it names exists (so it cannot race a DeleteVersion, which checks the aliases
 * in one step too: store.ts), and the alias is new (ARGV[3] `create`) or still the text the caller
 * read (`replace`, ARGV[4]).
 * KEYS: the aliases, $LATEST, the versions. ARGV: alias name, JSON, mode, previous text, versions….
 * Returns ok | exists | changed | nofunction | noversion:<version>.
 */
const WRITE = `if redis.call('EXISTS', KEYS[2]) == 0 then return 'nofunction' end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == 'create' then
  if cur then return 'exists' end
elseif cur ~= ARGV[4] then return 'changed' end
for i = 5, #ARGV do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 0 then return 'noversion:' .. ARGV[i] end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 'ok'`;

/** Deletes an alias if it is still the text the caller read. KEYS: the aliases. ARGV: name, text. */
const DELETE = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0`;

export type AliasWriteOutcome = { outcome: 'ok' | 'exists' | 'changed' | 'nofunction' } | { outcome: 'noversion'; version: string };

/**
 * A function's aliases in Redis: one hash per function, alias name → JSON, next to its versions
 * hash (keys built by store/keys.ts). FunctionStore removes the hash with the function and
 * refuses to delete a version an alias uses.
 */
export class AliasStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** Serves `invokable` from memory while Redis says the aliases have not changed (functions/store.ts does the same for records). */
    private readonly tracked?: TrackedReads,
  ) {}

  /** The alias an invocation runs by, read through the tracked cache when there is one; updates read with `get`. */
  async invokable(tenant: string, fn: string, alias: string): Promise<AliasRecord | undefined> {
    const key = this.keys.fnAliases(tenant, fn);
    const text = await (this.tracked ? this.tracked.hget(key, alias) : this.redis.hget(key, alias));
    return text === null ? undefined : (JSON.parse(text) as AliasRecord);
  }

  /** The alias and the exact text it was read from (for `replace` and `delete`). */
  async get(tenant: string, fn: string, alias: string): Promise<{ record: AliasRecord; text: string } | undefined> {
    const text = await this.redis.hget(this.keys.fnAliases(tenant, fn), alias);
    return text === null ? undefined : { record: JSON.parse(text) as AliasRecord, text };
  }

  /** Every alias of a function, in name order (a function has few). */
  async all(tenant: string, fn: string): Promise<AliasRecord[]> {
    const all = Object.values(await this.redis.hgetall(this.keys.fnAliases(tenant, fn))).map((t) => JSON.parse(t) as AliasRecord);
    return all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  create(tenant: string, fn: string, record: AliasRecord): Promise<AliasWriteOutcome> {
    return this.write(tenant, fn, record, 'create', '');
  }

  /** Replaces the alias if nobody changed it since `previousText` was read. */
  replace(tenant: string, fn: string, previousText: string, record: AliasRecord): Promise<AliasWriteOutcome> {
    return this.write(tenant, fn, record, 'replace', previousText);
  }

  /** Deletes the alias if nobody changed it since `previousText` was read. */
  async delete(tenant: string, fn: string, alias: string, previousText: string): Promise<boolean> {
    const deleted = (await this.redis.eval(DELETE, 1, this.keys.fnAliases(tenant, fn), alias, previousText)) === 1;
    this.tracked?.forget(this.keys.fnAliases(tenant, fn));
    return deleted;
  }

  private async write(tenant: string, fn: string, record: AliasRecord, mode: 'create' | 'replace', previousText: string): Promise<AliasWriteOutcome> {
    const published = [record.functionVersion, ...Object.keys(record.additionalVersionWeights)].filter((v) => v !== '$LATEST');
    const keys = [this.keys.fnAliases(tenant, fn), this.keys.fn(tenant, fn), this.keys.fnVersions(tenant, fn)];
    const out = (await this.redis.eval(WRITE, 3, ...keys, record.name, JSON.stringify(record), mode, previousText, ...published)) as string;
    // This replica's next invocation by the alias runs what was just written (others hear of it from Redis).
    this.tracked?.forget(keys[0] as string);
    if (out.startsWith('noversion:')) return { outcome: 'noversion', version: out.slice('noversion:'.length) };
    return { outcome: out as 'ok' | 'exists' | 'changed' | 'nofunction' };
  }
}
