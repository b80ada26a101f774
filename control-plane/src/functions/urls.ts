import { randomInt } from 'node:crypto';
import type { Redis } from 'ioredis';
import { KilnError, ValidationError } from '../errors.js';
import type { Keys } from '../store/keys.js';
import type { Principal } from '../tenancy/principal.js';
import type { FunctionService } from './service.js';
import type { FunctionRef } from './types.js';

export const URL_AUTH_TYPES = ['NONE', 'AWS_IAM'] as const;
export type UrlAuthType = (typeof URL_AUTH_TYPES)[number];

/** A function URL's CORS settings, in Lambda's own shape (the API returns them as stored). */
export interface UrlCors {
  AllowCredentials?: boolean;
  AllowHeaders?: string[];
  AllowMethods?: string[];
  AllowOrigins?: string[];
  ExposeHeaders?: string[];
  MaxAge?: number;
}

/**
 * A function URL: which function (and alias) it invokes, who may call it, and its CORS answer.
 * `id` is the unguessable part of the URL; `qualifier` is '' for the unqualified function.
 */
export interface FunctionUrlRecord {
  id: string;
  tenant: string;
  name: string;
  qualifier: string;
  authType: UrlAuthType;
  cors?: UrlCors;
  invokeMode: UrlInvokeMode;
  creationTime: string;
  lastModifiedTime: string;
}

export interface FunctionUrlInput {
  authType?: string;
  cors?: UrlCors;
  invokeMode?: string;
}

export class FunctionUrlNotFoundError extends KilnError {
  constructor(name: string, qualifier: string) {
    super('FunctionUrlNotFound', 404, `function "${name}"${qualifier ? ` (qualifier ${qualifier})` : ''} has no function URL config`, { functionName: name, qualifier });
  }
}

export class FunctionUrlExistsError extends KilnError {
  constructor(name: string, qualifier: string) {
    super('FunctionUrlExists', 409, `function "${name}"${qualifier ? ` (qualifier ${qualifier})` : ''} already has a function URL config; change it with UpdateFunctionUrlConfig or delete it first`, { functionName: name, qualifier });
  }
}

/** A setting Lambda has that Kiln does not implement yet, or a value outside an enum (Lambda's ValidationException). */
export class UrlSettingError extends KilnError {
  constructor(message: string, field: string) {
    super('UnsupportedSetting', 400, message, { field });
  }
}

/** AWS's id alphabet and length: 32 lowercase letters and digits (~165 random bits). */
const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const URL_ID = /^[a-z0-9]{32}$/;
/** Aliases only, as in Lambda: a URL names the unqualified function or an alias, never a version. */
const QUALIFIER = /^(?!\d+$)[0-9A-Za-z_-]{1,128}$/;
const METHODS = ['GET', 'PUT', 'HEAD', 'POST', 'PATCH', 'DELETE', '*'];

export function newUrlId(): string {
  let id = '';
  for (let i = 0; i < 32; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}

function checkList(field: string, list: unknown, max: number, maxLen: number, item: RegExp = /^[\x21-\x7e]+$/): string[] | undefined {
  if (list === undefined) return undefined;
  if (!Array.isArray(list) || list.length > max) throw new ValidationError(`Cors.${field} must be a list of at most ${max} strings`, { field: `Cors.${field}` });
  for (const v of list) {
    if (typeof v !== 'string' || v.length < 1 || v.length > maxLen || !item.test(v)) throw new ValidationError(`Cors.${field} entries must be 1-${maxLen} printable characters without spaces; got ${JSON.stringify(v).slice(0, 80)}`, { field: `Cors.${field}` });
  }
  return list as string[];
}

/** Lambda's CORS limits; anything out of them is refused with what to change. */
export function checkCors(cors: UrlCors | undefined): UrlCors | undefined {
  if (cors === undefined) return undefined;
  if (cors === null || typeof cors !== 'object') throw new ValidationError('Cors must be an object', { field: 'Cors' });
  const out: UrlCors = {};
  if (cors.AllowCredentials !== undefined) out.AllowCredentials = cors.AllowCredentials === true;
  const headers = checkList('AllowHeaders', cors.AllowHeaders, 100, 1024);
  if (headers) out.AllowHeaders = headers;
  const methods = checkList('AllowMethods', cors.AllowMethods, 6, 6);
  if (methods) {
    const bad = methods.find((m) => !METHODS.includes(m));
    if (bad) throw new ValidationError(`Cors.AllowMethods entries must be among ${METHODS.join(', ')}; got "${bad}"`, { field: 'Cors.AllowMethods' });
    out.AllowMethods = methods;
  }
  const origins = checkList('AllowOrigins', cors.AllowOrigins, 100, 253);
  if (origins) out.AllowOrigins = origins;
  const expose = checkList('ExposeHeaders', cors.ExposeHeaders, 100, 1024);
  if (expose) out.ExposeHeaders = expose;
  if (cors.MaxAge !== undefined) {
    if (!Number.isInteger(cors.MaxAge) || cors.MaxAge < 0 || cors.MaxAge > 86400) throw new ValidationError(`Cors.MaxAge must be an integer between 0 and 86400; got ${String(cors.MaxAge)}`, { field: 'Cors.MaxAge' });
    out.MaxAge = cors.MaxAge;
  }
  return out;
}

function checkAuthType(authType: string | undefined): UrlAuthType {
  if (!URL_AUTH_TYPES.includes(authType as UrlAuthType)) throw new UrlSettingError(`AuthType must be NONE or AWS_IAM; got "${String(authType).slice(0, 40)}"`, 'AuthType');
  return authType as UrlAuthType;
}

/** BUFFERED: the handler's result is the response; RESPONSE_STREAM: its response stream is, sent as written (api/lambda/url-stream.ts). */
export type UrlInvokeMode = 'BUFFERED' | 'RESPONSE_STREAM';

function checkInvokeMode(mode: string | undefined): UrlInvokeMode {
  if (mode === undefined || mode === 'BUFFERED' || mode === 'RESPONSE_STREAM') return mode ?? 'BUFFERED';
  throw new UrlSettingError(`InvokeMode must be BUFFERED or RESPONSE_STREAM; got "${mode.slice(0, 40)}"`, 'InvokeMode');
}

function checkQualifier(qualifier: string | undefined): string {
  if (qualifier === undefined || qualifier === '') return '';
  if (!QUALIFIER.test(qualifier)) throw new ValidationError(`Qualifier must be an alias name (a function URL cannot point at a version or $LATEST); got "${qualifier.slice(0, 80)}"`, { field: 'Qualifier' });
  return qualifier;
}

/** Creates a URL config unless one exists, and its id's index: one step. KEYS: the function's URLs, the id. */
const CREATE = `if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
return 1`;
/** Replaces a URL config only if it still holds what the caller read. */
const REPLACE = `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) return 1 end return 0`;

/**
 * URL configs in Redis: a hash per function (qualifier → record), deleted with the function
 * (FunctionStore.delete), and id → {tenant, name, qualifier} for serving. A record is served
 * only when the id index and the function's hash agree, so an id left behind by a deleted (or
 * deleted and re-created) function resolves to nothing.
 */
export class FunctionUrlStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async create(r: FunctionUrlRecord): Promise<boolean> {
    const where = JSON.stringify({ tenant: r.tenant, name: r.name, qualifier: r.qualifier });
    return (await this.redis.eval(CREATE, 2, this.keys.fnUrls(r.tenant, r.name), this.keys.fnUrlId(r.id), r.qualifier, JSON.stringify(r), where)) === 1;
  }

  async get(tenant: string, name: string, qualifier: string): Promise<{ record: FunctionUrlRecord; text: string } | undefined> {
    const text = await this.redis.hget(this.keys.fnUrls(tenant, name), qualifier);
    return text === null ? undefined : { record: { ...(JSON.parse(text) as FunctionUrlRecord), tenant, name }, text };
  }

  async replace(previousText: string, r: FunctionUrlRecord): Promise<boolean> {
    return (await this.redis.eval(REPLACE, 1, this.keys.fnUrls(r.tenant, r.name), r.qualifier, previousText, JSON.stringify(r))) === 1;
  }

  async delete(r: FunctionUrlRecord): Promise<void> {
    await this.redis.multi().hdel(this.keys.fnUrls(r.tenant, r.name), r.qualifier).del(this.keys.fnUrlId(r.id)).exec();
  }

  async all(tenant: string, name: string): Promise<FunctionUrlRecord[]> {
    const texts = Object.values(await this.redis.hgetall(this.keys.fnUrls(tenant, name)));
    return texts.map((t) => ({ ...(JSON.parse(t) as FunctionUrlRecord), tenant, name })).sort((a, b) => (a.qualifier < b.qualifier ? -1 : a.qualifier > b.qualifier ? 1 : 0));
  }

  /** The URL config an id serves, if its function still has it. */
  async byId(id: string): Promise<FunctionUrlRecord | undefined> {
    const where = await this.redis.get(this.keys.fnUrlId(id));
    if (where === null) return undefined;
    const { tenant, name, qualifier } = JSON.parse(where) as { tenant: string; name: string; qualifier: string };
    const found = await this.get(tenant, name, qualifier);
    if (found?.record.id === id) return found.record;
    // Left by a deleted config or function: ids are never reused, so it can go.
    await this.redis.del(this.keys.fnUrlId(id));
    return undefined;
  }
}

/**
 * Function URLs (Lambda's CreateFunctionUrlConfig and friends). Every management call first
 * finds the function as FunctionService does for the caller, so another tenant's function (and
 * its URL) does not exist for it; the URL belongs to the function's tenant.
 */
export class FunctionUrlService {
  constructor(
    private readonly store: FunctionUrlStore,
    private readonly functions: FunctionService,
  ) {}

  private async owner(who: Principal, ref: FunctionRef): Promise<{ tenant: string; name: string }> {
    const fn = await this.functions.get(who, ref);
    return { tenant: fn.tenant, name: fn.name };
  }

  async create(who: Principal, ref: FunctionRef, qualifierIn: string | undefined, input: FunctionUrlInput): Promise<FunctionUrlRecord> {
    const qualifier = checkQualifier(qualifierIn);
    const authType = checkAuthType(input.authType);
    const invokeMode = checkInvokeMode(input.invokeMode);
    const cors = checkCors(input.cors);
    // An alias must exist (FunctionService resolves it once aliases exist; until then it refuses the name).
    const fn = qualifier ? await this.functions.get(who, ref, qualifier) : await this.functions.get(who, ref);
    const now = new Date().toISOString();
    const record: FunctionUrlRecord = { id: newUrlId(), tenant: fn.tenant, name: fn.name, qualifier, authType, ...(cors && Object.keys(cors).length ? { cors } : {}), invokeMode, creationTime: now, lastModifiedTime: now };
    if (!(await this.store.create(record))) throw new FunctionUrlExistsError(fn.name, qualifier);
    return record;
  }

  async get(who: Principal, ref: FunctionRef, qualifier: string | undefined): Promise<FunctionUrlRecord> {
    const q = checkQualifier(qualifier);
    const fn = await this.owner(who, ref);
    const found = await this.store.get(fn.tenant, fn.name, q);
    if (!found) throw new FunctionUrlNotFoundError(fn.name, q);
    return found.record;
  }

  /** Changes the fields given; absent ones keep their value (Cors is replaced as a whole, as in Lambda). */
  async update(who: Principal, ref: FunctionRef, qualifier: string | undefined, input: FunctionUrlInput): Promise<FunctionUrlRecord> {
    const q = checkQualifier(qualifier);
    const fn = await this.owner(who, ref);
    const authType = input.authType === undefined ? undefined : checkAuthType(input.authType);
    const invokeMode = input.invokeMode === undefined ? undefined : checkInvokeMode(input.invokeMode);
    const cors = checkCors(input.cors);
    for (let i = 0; i < 5; i++) {
      const found = await this.store.get(fn.tenant, fn.name, q);
      if (!found) throw new FunctionUrlNotFoundError(fn.name, q);
      const next: FunctionUrlRecord = { ...found.record, ...(authType ? { authType } : {}), ...(cors ? { cors } : {}), ...(invokeMode ? { invokeMode } : {}), lastModifiedTime: new Date().toISOString() };
      // An empty Cors object removes the CORS config, as in Lambda.
      if (cors && Object.keys(cors).length === 0) delete next.cors;
      if (await this.store.replace(found.text, next)) return next;
    }
    throw new KilnError('FunctionConflict', 409, `the function URL config of "${fn.name}" changed concurrently; retry`, { functionName: fn.name });
  }

  async delete(who: Principal, ref: FunctionRef, qualifier: string | undefined): Promise<void> {
    await this.store.delete(await this.get(who, ref, qualifier));
  }

  /** Lambda pages URL configs by marker (here the qualifier after which to go on) and MaxItems (1-50). */
  async list(who: Principal, ref: FunctionRef, marker: string | undefined, maxItems = 50): Promise<{ records: FunctionUrlRecord[]; nextMarker?: string }> {
    if (!Number.isInteger(maxItems) || maxItems < 1 || maxItems > 50) throw new ValidationError(`MaxItems must be an integer between 1 and 50; got ${maxItems}`, { field: 'MaxItems' });
    const fn = await this.owner(who, ref);
    const all = await this.store.all(fn.tenant, fn.name);
    // The unqualified function's qualifier is '', so the marker is the qualifier with a prefix.
    const after = marker === undefined ? undefined : marker.replace(/^q:/, '');
    const rest = after === undefined ? all : all.filter((r) => r.qualifier > after);
    const page = rest.slice(0, maxItems);
    const last = page.at(-1);
    return { records: page, ...(rest.length > maxItems && last ? { nextMarker: `q:${last.qualifier}` } : {}) };
  }

  /** What a URL id serves (no caller: the URL itself is the capability, checked by auth type after). */
  resolve(id: string): Promise<FunctionUrlRecord | undefined> {
    return URL_ID.test(id) ? this.store.byId(id) : Promise.resolve(undefined);
  }
}
