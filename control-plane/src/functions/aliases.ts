import { randomUUID } from 'node:crypto';
import { ValidationError } from '../errors.js';
import type { Principal } from '../tenancy/principal.js';
import type { AliasStore, AliasWriteOutcome } from './alias-store.js';
import { AliasExistsError, AliasNotFoundError, FunctionConflictError, FunctionNotFoundError, PreconditionFailedError } from './errors.js';
import type { FunctionService } from './service.js';
import type { FunctionUrlStore } from './urls.js';
import type { EventInvokeConfigs } from './event-invoke.js';
import { ALIAS_NAME, type AliasRecord, type FunctionRef } from './types.js';

/** What CreateAlias and UpdateAlias set; absent fields keep their value on update. */
export interface AliasSettings {
  functionVersion?: string;
  description?: string;
  /** Replaces the routing; `{}` removes it. */
  additionalVersionWeights?: Record<string, number>;
}

const CAS_TRIES = 5;
const VERSION = /^\d+$/;

export function checkAliasName(alias: string): void {
  if (!ALIAS_NAME.test(alias)) {
    throw new ValidationError(`alias name must be 1-128 letters, digits, dashes or underscores and not only digits; got "${alias.slice(0, 140)}"`, { field: 'Name' });
  }
}

/** AWS's rules for what an alias may point at; the store checks the versions exist. */
function checkTarget(a: Pick<AliasRecord, 'functionVersion' | 'additionalVersionWeights' | 'description'>): void {
  if (a.functionVersion !== '$LATEST' && !VERSION.test(a.functionVersion)) {
    throw new ValidationError(`FunctionVersion must be $LATEST or a published version number; got "${a.functionVersion.slice(0, 80)}"`, { field: 'FunctionVersion' });
  }
  if (a.description.length > 256) throw new ValidationError(`Description must be at most 256 characters; got ${a.description.length}`, { field: 'Description' });
  const routes = Object.entries(a.additionalVersionWeights);
  if (routes.length === 0) return;
  if (routes.length > 1) throw new ValidationError(`RoutingConfig may route to one additional version; got ${routes.length}`, { field: 'RoutingConfig' });
  const [version = '', weight] = routes[0] ?? [];
  if (a.functionVersion === '$LATEST') throw new ValidationError('RoutingConfig needs the alias to point at a published version, not $LATEST', { field: 'RoutingConfig' });
  if (!VERSION.test(version)) throw new ValidationError(`RoutingConfig may only route to a published version number; got "${version.slice(0, 80)}"`, { field: 'RoutingConfig' });
  if (version === a.functionVersion) throw new ValidationError(`RoutingConfig must route to a version other than the alias's own (${version})`, { field: 'RoutingConfig' });
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0 || weight > 1) {
    throw new ValidationError(`the weight of version ${version} must be a number between 0.0 and 1.0; got ${String(weight)}`, { field: 'RoutingConfig' });
  }
}

/**
 * Which version one invocation of the alias runs: the additional version with its weight's
 * probability, else the alias's own. Not a security decision, so Math.random is enough.
 */
export function routeOf(a: AliasRecord, random: () => number = Math.random): string {
  const [extra] = Object.entries(a.additionalVersionWeights);
  return extra && random() < extra[1] ? extra[0] : a.functionVersion;
}

/**
 * Function aliases: names pointing at $LATEST or a published version, optionally with weighted
 * routing to a second version. Ownership is the function's: the function is looked up for the
 * caller as FunctionService does, so another tenant's aliases are never found (404).
 */
export class AliasService {
  constructor(
    private readonly functions: FunctionService,
    private readonly store: AliasStore,
    /** A deleted alias takes its function URL with it (functions/urls.ts). */
    private readonly urls?: Pick<FunctionUrlStore, 'get' | 'delete'>,
    /** And its event invoke config (functions/event-invoke.ts). */
    private readonly eventConfigs?: Pick<EventInvokeConfigs, 'forget'>,
  ) {}

  /** The function `ref` names for `who`, with its tenant (404 if missing or unreachable). */
  private async fn(who: Principal, ref: FunctionRef): Promise<{ tenant: string; name: string }> {
    const latest = await this.functions.get(who, ref);
    return { tenant: latest.tenant, name: latest.name };
  }

  async create(who: Principal, ref: FunctionRef, alias: string, s: AliasSettings): Promise<AliasRecord> {
    checkAliasName(alias);
    if (s.functionVersion === undefined) throw new ValidationError('FunctionVersion is required', { field: 'FunctionVersion' });
    const record: AliasRecord = { name: alias, functionVersion: s.functionVersion, description: s.description ?? '', additionalVersionWeights: s.additionalVersionWeights ?? {}, revisionId: randomUUID() };
    checkTarget(record);
    const fn = await this.fn(who, ref);
    this.check(fn.name, alias, await this.store.create(fn.tenant, fn.name, record));
    return record;
  }

  async get(who: Principal, ref: FunctionRef, alias: string): Promise<AliasRecord> {
    checkAliasName(alias);
    const fn = await this.fn(who, ref);
    const found = await this.store.get(fn.tenant, fn.name, alias);
    if (!found) throw new AliasNotFoundError(fn.name, alias);
    return found.record;
  }

  /** A page of aliases in name order, only those that run `functionVersion` if given. */
  async list(who: Principal, ref: FunctionRef, opts: { functionVersion?: string | undefined; marker?: string | undefined; maxItems?: number | undefined } = {}): Promise<{ aliases: AliasRecord[]; nextMarker?: string }> {
    const max = opts.maxItems ?? 50;
    if (!Number.isInteger(max) || max < 1 || max > 10000) throw new ValidationError(`MaxItems must be an integer between 1 and 10000; got ${max}`, { field: 'MaxItems' });
    const v = opts.functionVersion;
    if (v !== undefined && v !== '$LATEST' && !VERSION.test(v)) throw new ValidationError(`FunctionVersion must be $LATEST or a version number; got "${v.slice(0, 80)}"`, { field: 'FunctionVersion' });
    const fn = await this.fn(who, ref);
    const marker = opts.marker;
    const all = (await this.store.all(fn.tenant, fn.name)).filter((a) => (v === undefined || a.functionVersion === v || v in a.additionalVersionWeights) && (marker === undefined || a.name > marker));
    const page = all.slice(0, max);
    return { aliases: page, ...(all.length > max && page.length ? { nextMarker: page[page.length - 1]?.name ?? '' } : {}) };
  }

  /** Changes what the alias points at; with `revisionId`, only if the alias is still that revision (412). */
  async update(who: Principal, ref: FunctionRef, alias: string, s: AliasSettings, revisionId?: string): Promise<AliasRecord> {
    checkAliasName(alias);
    const fn = await this.fn(who, ref);
    for (let i = 0; i < CAS_TRIES; i++) {
      const current = await this.current(fn, alias, revisionId);
      const next: AliasRecord = {
        name: alias,
        functionVersion: s.functionVersion ?? current.record.functionVersion,
        description: s.description ?? current.record.description,
        additionalVersionWeights: s.additionalVersionWeights ?? current.record.additionalVersionWeights,
        revisionId: randomUUID(),
      };
      checkTarget(next);
      const out = await this.store.replace(fn.tenant, fn.name, current.text, next);
      if (out.outcome !== 'changed') {
        this.check(fn.name, alias, out);
        return next;
      }
    }
    throw new FunctionConflictError(fn.name, `alias "${alias}": ${CAS_TRIES} attempts lost to other writers`);
  }

  /** Deletes the alias; with `revisionId`, only if it is still that revision (412). */
  async delete(who: Principal, ref: FunctionRef, alias: string, revisionId?: string): Promise<void> {
    checkAliasName(alias);
    const fn = await this.fn(who, ref);
    for (let i = 0; i < CAS_TRIES; i++) {
      const current = await this.current(fn, alias, revisionId);
      if (await this.store.delete(fn.tenant, fn.name, alias, current.text)) {
        // Else an alias made again under the name would bring back the old, maybe public, URL.
        const url = await this.urls?.get(fn.tenant, fn.name, alias);
        if (url) await this.urls?.delete(url.record);
        await this.eventConfigs?.forget(fn.tenant, fn.name, alias);
        return;
      }
    }
    throw new FunctionConflictError(fn.name, `alias "${alias}": ${CAS_TRIES} attempts lost to other writers`);
  }

  /** The alias as stored, if it exists (404) and is the revision the caller names, if any (412). */
  private async current(fn: { tenant: string; name: string }, alias: string, revisionId: string | undefined): Promise<{ record: AliasRecord; text: string }> {
    const current = await this.store.get(fn.tenant, fn.name, alias);
    if (!current) throw new AliasNotFoundError(fn.name, alias);
    if (revisionId !== undefined && revisionId !== current.record.revisionId) throw new PreconditionFailedError(`alias "${alias}"`, revisionId);
    return current;
  }

  private check(name: string, alias: string, out: AliasWriteOutcome): void {
    if (out.outcome === 'exists') throw new AliasExistsError(name, alias);
    if (out.outcome === 'nofunction') throw new FunctionNotFoundError(name);
    if (out.outcome === 'noversion') throw new FunctionNotFoundError(name, out.version);
    if (out.outcome === 'changed') throw new FunctionConflictError(name, `alias "${alias}" changed concurrently`);
  }
}
