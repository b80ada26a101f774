import type { Redis } from 'ioredis';
import { KilnError, ValidationError } from '../errors.js';
import type { Keys } from '../store/keys.js';
import type { Principal } from '../tenancy/principal.js';
import type { FunctionService } from './service.js';
import type { FunctionRef } from './types.js';
import { checkDestinationConfig, type Destinations } from './destinations.js';

const LATEST = '$LATEST';
const FIELD = 'eic:';

/** Lambda's bounds: retries of a failed async event, and how old an event may get before it is given up. */
export const MAX_RETRY_ATTEMPTS = 2;
export const MIN_EVENT_AGE_S = 60;
export const MAX_EVENT_AGE_S = 21_600;

/** How a function's asynchronous invocations by one qualifier ($LATEST, a version or an alias) are retried. */
export interface EventInvokeConfig {
  tenant: string;
  name: string;
  qualifier: string;
  maximumRetryAttempts?: number;
  maximumEventAgeInSeconds?: number;
  /** DestinationConfig: functions of the same tenant that get the invocation record (functions/destinations.ts). */
  destinations?: Destinations;
  /** Epoch ms of the last change. */
  lastModified: number;
}

export interface EventInvokeInput {
  MaximumRetryAttempts?: unknown;
  MaximumEventAgeInSeconds?: unknown;
  DestinationConfig?: unknown;
}

export class EventInvokeConfigNotFoundError extends KilnError {
  constructor(name: string, qualifier: string) {
    super('EventInvokeConfigNotFound', 404, `The function ${name}:${qualifier} doesn't have an EventInvokeConfig`, { functionName: name, qualifier });
  }
}

function checkInt(field: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new ValidationError(`${field} must be an integer between ${min} and ${max}; got ${JSON.stringify(value)?.slice(0, 40)}`, { field });
  return value;
}

/**
 * Lambda's FunctionEventInvokeConfig: per function and qualifier, the retries of failed
 * asynchronous invocations (0–2), the maximum age of an event (60–21,600 s) and the destinations
 * (other functions of the tenant, functions/destinations.ts), which the invoker puts on each
 * Event job (attempts, `maxEventAgeMs`, `destinations`) and the outcome policy honours.
 * Kept in the function's settings hash (`eic:<qualifier>`), deleted with it; found for the caller
 * as every function route finds a function (another tenant's: ResourceNotFound).
 */
export class EventInvokeConfigs {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly functions: FunctionService,
  ) {}

  /** The function and the qualifier a call names, checked to exist ($LATEST when none). */
  private async target(who: Principal, ref: FunctionRef, qualifier: string | undefined): Promise<{ tenant: string; name: string; qualifier: string }> {
    const q = qualifier ?? LATEST;
    const { record } = await this.functions.resolve(who, ref, q);
    return { tenant: record.tenant, name: record.name, qualifier: q };
  }

  /** Put (replace) or, with `merge`, Update (change the fields given). */
  async put(who: Principal, ref: FunctionRef, qualifier: string | undefined, input: EventInvokeInput, merge: boolean): Promise<EventInvokeConfig> {
    const retries = checkInt('MaximumRetryAttempts', input.MaximumRetryAttempts, 0, MAX_RETRY_ATTEMPTS);
    const age = checkInt('MaximumEventAgeInSeconds', input.MaximumEventAgeInSeconds, MIN_EVENT_AGE_S, MAX_EVENT_AGE_S);
    const t = await this.target(who, ref, qualifier);
    const destinations = await checkDestinationConfig(input.DestinationConfig, who, this.functions);
    const before = merge ? await this.read(t.tenant, t.name, t.qualifier) : undefined;
    if (merge && !before) throw new EventInvokeConfigNotFoundError(t.name, t.qualifier);
    const config: EventInvokeConfig = {
      ...t,
      ...(before?.maximumRetryAttempts !== undefined ? { maximumRetryAttempts: before.maximumRetryAttempts } : {}),
      ...(before?.maximumEventAgeInSeconds !== undefined ? { maximumEventAgeInSeconds: before.maximumEventAgeInSeconds } : {}),
      ...(retries !== undefined ? { maximumRetryAttempts: retries } : {}),
      ...(age !== undefined ? { maximumEventAgeInSeconds: age } : {}),
      // Update keeps the destinations unless it names DestinationConfig; Put replaces them.
      ...(destinations === undefined && before?.destinations ? { destinations: before.destinations } : {}),
      ...(destinations && Object.keys(destinations).length > 0 ? { destinations } : {}),
      lastModified: Date.now(),
    };
    await this.redis.hset(this.keys.fnSettings(t.tenant, t.name), FIELD + t.qualifier, JSON.stringify(config));
    return config;
  }

  async get(who: Principal, ref: FunctionRef, qualifier: string | undefined): Promise<EventInvokeConfig> {
    const t = await this.target(who, ref, qualifier);
    const config = await this.read(t.tenant, t.name, t.qualifier);
    if (!config) throw new EventInvokeConfigNotFoundError(t.name, t.qualifier);
    return config;
  }

  async delete(who: Principal, ref: FunctionRef, qualifier: string | undefined): Promise<void> {
    const t = await this.target(who, ref, qualifier);
    if ((await this.redis.hdel(this.keys.fnSettings(t.tenant, t.name), FIELD + t.qualifier)) === 0) throw new EventInvokeConfigNotFoundError(t.name, t.qualifier);
  }

  /** A function's configs in qualifier order, `max` after `marker` (a qualifier). */
  async list(who: Principal, ref: FunctionRef, marker: string | undefined, max: number): Promise<{ configs: EventInvokeConfig[]; nextMarker?: string }> {
    const fn = await this.functions.get(who, ref);
    const all = Object.entries(await this.redis.hgetall(this.keys.fnSettings(fn.tenant, fn.name)))
      .filter(([field]) => field.startsWith(FIELD))
      .map(([field, text]) => ({ ...(JSON.parse(text) as EventInvokeConfig), tenant: fn.tenant, name: fn.name, qualifier: field.slice(FIELD.length) }))
      .sort((a, b) => (a.qualifier < b.qualifier ? -1 : a.qualifier > b.qualifier ? 1 : 0))
      .filter((c) => marker === undefined || c.qualifier > marker);
    const configs = all.slice(0, max);
    return { configs, ...(all.length > max && configs.length ? { nextMarker: configs[configs.length - 1]?.qualifier } : {}) };
  }

  /** Drops the config of a qualifier that is gone (a deleted alias), so one made again under its name starts without it. */
  async forget(tenant: string, name: string, qualifier: string): Promise<void> {
    await this.redis.hdel(this.keys.fnSettings(tenant, name), FIELD + qualifier);
  }

  /** For the invoker: the config of an async invocation by `qualifier` ($LATEST when none), if any. */
  forInvocation(tenant: string, name: string, qualifier: string | undefined): Promise<EventInvokeConfig | undefined> {
    return this.read(tenant, name, qualifier ?? LATEST);
  }

  private async read(tenant: string, name: string, qualifier: string): Promise<EventInvokeConfig | undefined> {
    const text = await this.redis.hget(this.keys.fnSettings(tenant, name), FIELD + qualifier);
    return text === null ? undefined : { ...(JSON.parse(text) as EventInvokeConfig), tenant, name, qualifier };
  }
}
