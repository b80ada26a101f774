import { randomUUID } from 'node:crypto';
import { NotFoundError, ValidationError } from '../errors.js';
import { canReach, TENANT_ID, type Principal } from '../tenancy/principal.js';
import { QuotaExceededError, type Quotas } from '../tenancy/quotas.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { normalisePolicy } from '@kiln/executor/egress-policy';
import type { EgressPlacement, EgressRequest } from '../egress/placement.js';
import type { AliasStore } from './alias-store.js';
import { routeOf } from './aliases.js';
import { AliasNotFoundError, FunctionConflictError, FunctionExistsError, FunctionNotFoundError, PreconditionFailedError, VersionInUseError } from './errors.js';
import { unpack, type CodeInput, type CodePackages } from './package.js';
import type { FunctionStore } from './store.js';
import { isLambdaRuntime, RUNTIME_NAMES, RUNTIMES } from '../invocation/languages.js';
import { ALIAS_NAME, FUNCTION_NAME, type AliasRecord, type FunctionRef, type FunctionVersionRecord } from './types.js';

/** The settable part of a function, as both API surfaces pass it in. */
export interface FunctionSettings {
  runtime?: string;
  handler?: string;
  template?: string;
  memorySize?: number;
  /** EphemeralStorage.Size in MB. */
  ephemeralStorageMB?: number;
  timeout?: number;
  environment?: Record<string, string>;
  /** The function's egress policy (templates with one only); null removes it. */
  network?: EgressRequest['network'] | null;
  /** Tenant secret names; an empty list removes them. */
  secrets?: string[];
  description?: string;
  maxRetryAttempts?: number;
}

export interface CreateFunctionInput extends FunctionSettings {
  name: string;
  /** Whose function it is: absent, the caller's tenant; another tenant's only for an administrator. */
  tenant?: string | undefined;
  runtime: string;
  code: CodeInput;
  publish?: boolean;
}

const LATEST = '$LATEST';
/** Lambda's EphemeralStorage.Size bounds, in MB: the default is the least. */
export const DEFAULT_EPHEMERAL_MB = 512;
const MAX_EPHEMERAL_MB = 10240;
const ENV_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const ENV_MAX_BYTES = 4096;
/**
 * Lambda's reserved environment keys: the runtime sets them (region, function identity, the
 * Runtime API's address, credentials), and a function that set them could point its own runtime
 * elsewhere or impersonate another function. Refused as Lambda refuses them.
 */
const RESERVED_ENV = new Set([
  '_HANDLER', '_X_AMZN_TRACE_ID', 'AWS_DEFAULT_REGION', 'AWS_REGION', 'AWS_EXECUTION_ENV',
  'AWS_LAMBDA_FUNCTION_NAME', 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'AWS_LAMBDA_FUNCTION_VERSION',
  'AWS_LAMBDA_INITIALIZATION_TYPE', 'AWS_LAMBDA_LOG_GROUP_NAME', 'AWS_LAMBDA_LOG_STREAM_NAME',
  'AWS_ACCESS_KEY', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN',
  'AWS_LAMBDA_RUNTIME_API', 'LAMBDA_TASK_ROOT', 'LAMBDA_RUNTIME_DIR',
]);
const CAS_TRIES = 5;

function checkInt(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) throw new ValidationError(`${field} must be an integer between ${min} and ${max}; got ${value}`, { field });
}

export function checkName(name: string): void {
  if (!FUNCTION_NAME.test(name)) throw new ValidationError(`function name must be 1-64 letters, digits, dashes or underscores; got "${name.slice(0, 80)}"`, { field: 'name' });
}

/**
 * The tenant whose functions `who` addresses when naming `tenant` (absent: its own), or
 * undefined when it may not reach that tenant. Callers then answer as if nothing were there
 * (404, an empty list), so a key learns nothing of other tenants.
 */
export function namespaceOf(who: Principal, tenant: string | undefined): string | undefined {
  if (tenant === undefined) return who.tenant;
  if (!TENANT_ID.test(tenant)) throw new ValidationError(`tenant must be a tenant id (lowercase letters, digits and dashes); got "${tenant.slice(0, 80)}"`, { field: 'tenant' });
  return canReach(who, tenant) ? tenant : undefined;
}

/** A function name resolved for a caller: the tenant it lives in and its checked name. */
interface Owned {
  tenant: string;
  name: string;
}

/**
 * Functions as records: create, read, list, update code or configuration, publish
 * immutable numbered versions, delete. Every change to $LATEST gets a new revisionId and
 * lastModified, which is what makes invocations land on fresh instances.
 *
 * Every method takes the caller: names are looked up in the caller's tenant (or, for an
 * administrator, the tenant the reference names), so another tenant's function is never found.
 * Ownership costs no Redis round trip: it is in the key that is read anyway.
 */
export class FunctionService {
  constructor(
    private readonly store: FunctionStore,
    private readonly aliases: AliasStore,
    private readonly packages: CodePackages,
    private readonly templates: TemplateRegistry,
    private readonly limits: { maxTimeoutMs: number; maxEphemeralStorageMB?: number },
    /** The tenant's `functions` quota, checked at create (tenancy/quotas.ts). */
    private readonly quotas?: Pick<Quotas, 'checkFunctions'>,
    /** Checks a function's egress policy and secrets against its template and tenant (egress/placement.ts). */
    private readonly egress?: Pick<EgressPlacement, 'plan'>,
  ) {}

  /**
   * The egress part of settings merged onto `base`, checked (400 NetworkPolicyWidens, 409
   * NetworkPolicyUnsupported, 404 SecretNotFound in the function's own tenant only).
   */
  private async settleEgress(tenant: string, name: string, template: string, base: Partial<FunctionVersionRecord>, s: FunctionSettings): Promise<Pick<FunctionVersionRecord, 'network' | 'secrets'>> {
    const network = s.network === null ? undefined : s.network !== undefined ? normalisePolicy(s.network) : base.network;
    const secrets = s.secrets ?? base.secrets ?? [];
    if (network === undefined && secrets.length === 0) return {};
    if (!this.egress) throw new ValidationError('this deployment takes no per-function network policy or secrets', { field: 'network' });
    await this.egress.plan(tenant, template, { network, secrets }, `function "${name}"`);
    return { ...(network ? { network } : {}), ...(secrets.length ? { secrets: [...new Set(secrets)] } : {}) };
  }

  /** Where `ref` points for `who`; 404 for a tenant it may not reach, as for a missing function. */
  private owned(who: Principal, ref: FunctionRef, qualifier?: string): Owned {
    checkName(ref.name);
    const tenant = namespaceOf(who, ref.tenant);
    if (tenant === undefined) throw new FunctionNotFoundError(ref.name, qualifier);
    return { tenant, name: ref.name };
  }

  /** Validates settings merged onto `base` and returns the resulting record fields. */
  private settle(base: Partial<FunctionVersionRecord>, s: FunctionSettings): Omit<FunctionVersionRecord, 'tenant' | 'name' | 'version' | 'codeSha256' | 'codeSize' | 'codeBlob' | 'lastModified' | 'revisionId'> {
    const runtime = s.runtime ?? base.runtime;
    if (!runtime || !isLambdaRuntime(runtime)) {
      throw new ValidationError(`runtime must be one of ${RUNTIME_NAMES.join(', ')}; got "${String(runtime)}"`, { field: 'runtime' });
    }
    const rt = runtime;
    const handler = s.handler ?? base.handler ?? RUNTIMES[rt].defaultHandler;
    if (!/^[^\s]{1,128}$/.test(handler)) throw new ValidationError(`handler must be 1-128 characters without spaces; got "${handler.slice(0, 80)}"`, { field: 'handler' });
    if (!rt.startsWith('provided') && !/^[^.]+(\.[^.]+)*\.[^.]+$/.test(handler)) throw new ValidationError(`handler must look like "module.function" for ${rt}; got "${handler}"`, { field: 'handler' });
    // A runtime change without a template change picks the new runtime's default template.
    const template = s.template ?? (s.runtime && s.runtime !== base.runtime ? undefined : base.template) ?? RUNTIMES[rt].template;
    if (!this.templates.has(template)) throw new ValidationError(`template "${template}" does not exist; known templates: ${this.templates.names().join(', ')}`, { field: 'template' });
    if (!this.templates.get(template).runtimes.includes(rt)) throw new ValidationError(`template "${template}" does not offer ${rt}`, { field: 'template' });
    const memorySize = s.memorySize ?? base.memorySize ?? 128;
    checkInt('memorySize', memorySize, 128, 10240);
    // /tmp: Lambda's 512–10240 MB, bounded by the operator's KILN_LAMBDA_MAX_EPHEMERAL_MB.
    const ephemeralStorageMB = s.ephemeralStorageMB ?? base.ephemeralStorageMB ?? DEFAULT_EPHEMERAL_MB;
    checkInt('EphemeralStorage.Size', ephemeralStorageMB, DEFAULT_EPHEMERAL_MB, this.limits.maxEphemeralStorageMB ?? MAX_EPHEMERAL_MB);
    const timeout = s.timeout ?? base.timeout ?? 3;
    checkInt('timeout', timeout, 1, Math.floor(this.limits.maxTimeoutMs / 1000));
    const maxRetryAttempts = s.maxRetryAttempts ?? base.maxRetryAttempts ?? 2;
    checkInt('maxRetryAttempts', maxRetryAttempts, 0, 2);
    const environment = s.environment ?? base.environment ?? {};
    for (const [k, v] of Object.entries(environment)) {
      if (!ENV_NAME.test(k)) throw new ValidationError(`environment variable name "${k.slice(0, 80)}" must start with a letter and hold only letters, digits and underscores`, { field: 'environment' });
      if (typeof v !== 'string') throw new ValidationError(`environment variable "${k}" must be a string`, { field: 'environment' });
    }
    const reserved = Object.keys(environment).filter((k) => RESERVED_ENV.has(k));
    if (reserved.length) {
      throw new ValidationError(
        `Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: ${reserved.join(', ')}`,
        { field: 'environment', reserved },
      );
    }
    if (Buffer.byteLength(JSON.stringify(environment)) > ENV_MAX_BYTES) throw new ValidationError(`environment variables must total at most ${ENV_MAX_BYTES} bytes`, { field: 'environment' });
    const description = s.description ?? base.description ?? '';
    if (description.length > 256) throw new ValidationError(`description must be at most 256 characters; got ${description.length}`, { field: 'description' });
    return { runtime: rt, handler, template, memorySize, ephemeralStorageMB, timeout, environment, description, maxRetryAttempts };
  }

  async create(who: Principal, input: CreateFunctionInput): Promise<FunctionVersionRecord> {
    checkName(input.name);
    const tenant = namespaceOf(who, input.tenant);
    if (tenant === undefined) throw new NotFoundError('Tenant', input.tenant ?? '');
    const fn = { tenant, name: input.name };
    // Checked first so a tenant at its quota costs no unpacking; the create checks again, atomically.
    const maxFunctions = await this.quotas?.checkFunctions(tenant, await this.store.count(tenant));
    const settled = this.settle({}, input);
    const settings = { ...settled, ...(await this.settleEgress(tenant, input.name, settled.template, {}, input)) };
    const pkg = unpack(input.code, settings.runtime, settings.handler);
    const codeBlob = await this.packages.save(fn, pkg);
    const record: FunctionVersionRecord = {
      tenant,
      name: input.name,
      version: LATEST,
      ...settings,
      codeSha256: pkg.sha256,
      codeSize: pkg.size,
      codeBlob,
      lastModified: new Date().toISOString(),
      revisionId: randomUUID(),
    };
    const made = await this.store.create(record, maxFunctions);
    if (made.outcome !== 'created') {
      // The package was saved under the taken name; keep it only if that function uses it.
      await this.dropUnreferenced(fn, codeBlob);
      if (made.outcome === 'over') throw new QuotaExceededError(tenant, 'functions', maxFunctions ?? 0, made.count);
      throw new FunctionExistsError(input.name);
    }
    if (input.publish) await this.store.publish(record);
    return record;
  }

  /** $LATEST, the published version the qualifier names, or the version an alias points at. */
  async get(who: Principal, ref: FunctionRef, qualifier: string = LATEST): Promise<FunctionVersionRecord> {
    return (await this.resolve(who, ref, qualifier)).record;
  }

  /**
   * The version a qualifier runs: $LATEST, a version number, or an alias (then `alias` is set).
   * With `route`, an alias with weighted routing picks the version for one invocation; without,
   * it is the alias's own version (what GetFunction shows).
   */
  async resolve(who: Principal, ref: FunctionRef, qualifier: string = LATEST, route = false): Promise<{ record: FunctionVersionRecord; alias?: AliasRecord }> {
    const isVersion = qualifier === LATEST || /^\d+$/.test(qualifier);
    if (!isVersion && !ALIAS_NAME.test(qualifier)) throw new ValidationError(`qualifier must be $LATEST, a version number or an alias name; got "${qualifier.slice(0, 80)}"`, { field: 'qualifier' });
    const { tenant, name } = this.owned(who, ref, qualifier);
    let alias: AliasRecord | undefined;
    let version = qualifier;
    if (!isVersion) {
      alias = route ? await this.aliases.invokable(tenant, name, qualifier) : (await this.aliases.get(tenant, name, qualifier))?.record;
      // Whether the function itself exists is not worth a read: both are ResourceNotFound.
      if (!alias) throw new AliasNotFoundError(name, qualifier);
      version = route ? routeOf(alias) : alias.functionVersion;
    }
    // An invocation (`route`) reads through the store's tracked cache; GetFunction and updates from Redis.
    const record = route ? await this.store.invokable(tenant, name, version) : version === LATEST ? (await this.store.latest(tenant, name))?.record : await this.store.version(tenant, name, version);
    if (!record) throw new FunctionNotFoundError(name, version);
    return { record, ...(alias ? { alias } : {}) };
  }

  /** A page of one tenant's functions: the caller's own, or for an administrator the one named. */
  async list(who: Principal, marker: string | undefined, maxItems = 50, tenant?: string): Promise<{ records: FunctionVersionRecord[]; nextMarker?: string }> {
    checkInt('maxItems', maxItems, 1, 10000);
    const space = namespaceOf(who, tenant);
    return space === undefined ? { records: [] } : this.store.list(space, marker, maxItems);
  }

  async versions(who: Principal, ref: FunctionRef): Promise<FunctionVersionRecord[]> {
    const latest = await this.get(who, ref);
    return [latest, ...(await this.store.versions(latest.tenant, latest.name))];
  }

  /**
   * Applies `change` to $LATEST with compare-and-set, retrying when another writer won. With
   * `revisionId` (Lambda's RevisionId), only while $LATEST is that revision: 412 otherwise, and
   * the compare-and-set makes the check and the write one step.
   */
  private async modify(
    fn: Owned,
    change: (current: FunctionVersionRecord) => FunctionVersionRecord | Promise<FunctionVersionRecord>,
    revisionId?: string,
  ): Promise<{ before: FunctionVersionRecord; after: FunctionVersionRecord }> {
    const { tenant, name } = fn;
    for (let i = 0; i < CAS_TRIES; i++) {
      const current = await this.store.latest(tenant, name);
      if (!current) throw new FunctionNotFoundError(name);
      if (revisionId !== undefined && revisionId !== current.record.revisionId) throw new PreconditionFailedError(`function "${name}"`, revisionId);
      const next = { ...(await change(current.record)), lastModified: new Date().toISOString(), revisionId: randomUUID() };
      if (await this.store.replace(current.text, next)) return { before: current.record, after: next };
    }
    throw new FunctionConflictError(name, `${CAS_TRIES} attempts lost to other writers`);
  }

  async updateConfiguration(who: Principal, ref: FunctionRef, settings: FunctionSettings, revisionId?: string): Promise<FunctionVersionRecord> {
    const fn = this.owned(who, ref);
    return (
      await this.modify(
        fn,
        async (cur) => {
          const settled = this.settle(cur, settings);
          const egress = await this.settleEgress(fn.tenant, fn.name, settled.template, cur, settings);
          // What settleEgress leaves out is removed, not kept from `cur`.
          const next: FunctionVersionRecord = { ...cur, ...settled, ...egress };
          if (!egress.network) delete next.network;
          if (!egress.secrets) delete next.secrets;
          return next;
        },
        revisionId,
      )
    ).after;
  }

  async updateCode(who: Principal, ref: FunctionRef, code: CodeInput, publish = false, revisionId?: string): Promise<FunctionVersionRecord> {
    const fn = this.owned(who, ref);
    const { before, after } = await this.modify(fn, async (cur) => {
      const pkg = unpack(code, cur.runtime, cur.handler);
      const codeBlob = await this.packages.save(fn, pkg);
      return { ...cur, codeSha256: pkg.sha256, codeSize: pkg.size, codeBlob };
    }, revisionId);
    if (before.codeBlob !== after.codeBlob) await this.dropUnreferenced(fn, before.codeBlob);
    if (publish) await this.store.publish(after);
    return after;
  }

  /**
   * Publishes $LATEST as the next version. Like Lambda, publishing an unchanged $LATEST
   * returns the newest version instead of a duplicate, and `codeSha256` guards against
   * publishing code other than what the caller saw.
   */
  async publish(who: Principal, ref: FunctionRef, opts: { description?: string; codeSha256?: string; revisionId?: string } = {}): Promise<FunctionVersionRecord> {
    const latest = await this.get(who, ref);
    if (opts.revisionId !== undefined && opts.revisionId !== latest.revisionId) throw new PreconditionFailedError(`function "${latest.name}"`, opts.revisionId);
    if (opts.codeSha256 && opts.codeSha256 !== latest.codeSha256) {
      throw new ValidationError(`codeSha256 ${opts.codeSha256} does not match $LATEST's ${latest.codeSha256}`, { field: 'codeSha256' });
    }
    const newest = (await this.store.versions(latest.tenant, latest.name)).at(-1);
    if (newest && newest.revisionId === latest.revisionId) return newest;
    return this.store.publish({ ...latest, ...(opts.description !== undefined ? { description: opts.description } : {}), revisionId: latest.revisionId });
  }

  /** Deletes one published version, or (no qualifier) the function with all its versions and code. */
  async delete(who: Principal, ref: FunctionRef, qualifier?: string): Promise<void> {
    const latest = await this.get(who, ref);
    const fn = { tenant: latest.tenant, name: latest.name };
    if (qualifier !== undefined && qualifier !== LATEST) {
      if (ALIAS_NAME.test(qualifier)) throw new ValidationError(`"${qualifier}" is an alias name; delete an alias with DeleteAlias (DELETE …/aliases/${qualifier})`, { field: 'qualifier' });
      const version = /^\d+$/.test(qualifier) ? await this.store.version(fn.tenant, fn.name, qualifier) : undefined;
      const out = version ? await this.store.deleteVersion(fn.tenant, fn.name, qualifier) : { deleted: false };
      if (out.usedBy !== undefined) throw new VersionInUseError(fn.name, qualifier, out.usedBy);
      if (!version || !out.deleted) throw new FunctionNotFoundError(fn.name, qualifier);
      await this.dropUnreferenced(fn, version.codeBlob);
      return;
    }
    const blobs = new Set([latest.codeBlob, ...(await this.store.versions(fn.tenant, fn.name)).map((v) => v.codeBlob)]);
    await this.store.delete(fn.tenant, fn.name);
    for (const b of blobs) await this.packages.delete(b);
    // Packages retired by code updates, kept for queued jobs until now.
    await this.packages.deleteAll(fn);
  }

  /**
   * Retires a code package that neither $LATEST nor any version uses any more: jobs queued
   * before the change still run it (CodePackages.retire). Deleting the whole function deletes
   * its packages at once, and its queued invocations fail (Kiln.CodeMissing), as Lambda drops
   * the events of a deleted function.
   */
  private async dropUnreferenced(fn: Owned, blob: string): Promise<void> {
    if (!blob) return;
    const users = [(await this.store.latest(fn.tenant, fn.name))?.record, ...(await this.store.versions(fn.tenant, fn.name))];
    if (!users.some((r) => r?.codeBlob === blob)) await this.packages.retire(blob);
  }
}
