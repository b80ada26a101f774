import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChainableCommander, Redis } from 'ioredis';
import { KilnError } from '../errors.js';
import { log } from '../log.js';
import type { Keys } from '../store/keys.js';
import type { TenantRecord } from './keyring.js';

/** The quotas a tenant has; an administrator may override each (admin API, `quotas`). */
export const QUOTAS = ['sessions', 'executions', 'functions', 'memoryMB', 'requestsPerSecond', 'volumes', 'volumeMB'] as const;
export type QuotaName = (typeof QUOTAS)[number];
export type QuotaLimits = Record<QuotaName, number>;

/**
 * What a client over a quota is told to wait, in seconds (`Retry-After`). Executions and the
 * request rate free up within a second or so; sessions, memory and functions only when the
 * tenant deletes something, so retrying sooner than that only costs requests.
 */
const RETRY_AFTER_SECONDS: QuotaLimits = { sessions: 5, executions: 1, functions: 30, memoryMB: 5, requestsPerSecond: 1, volumes: 60, volumeMB: 60 };

/** What each quota counts, for messages. */
const WHAT: Record<QuotaName, string> = {
  sessions: 'concurrent sessions',
  executions: 'concurrent executions (queued + running)',
  functions: 'functions',
  memoryMB: 'MB of memory of live sessions',
  requestsPerSecond: 'API requests per second on this replica',
  volumes: 'named volumes',
  volumeMB: 'MB of named volumes',
};

/** A tenant is at one of its quotas: 429 with `Retry-After`; Lambda: TooManyRequestsException. */
export class QuotaExceededError extends KilnError {
  constructor(
    readonly tenant: string,
    readonly quota: QuotaName,
    readonly limit: number,
    readonly used: number,
  ) {
    const retryAfterSeconds = RETRY_AFTER_SECONDS[quota];
    super(
      'QuotaExceeded',
      429,
      `tenant "${tenant}" is at its ${quota} quota: ${used} of ${limit} ${WHAT[quota]}; retry after ${retryAfterSeconds} s, once usage has dropped, or ask an administrator to raise it`,
      { quota, limit, used, retryAfterSeconds },
    );
  }
}

/**
 * A function is at its reserved concurrency (PutFunctionConcurrency; 0 throttles every call):
 * Lambda's TooManyRequestsException with Reason ReservedFunctionConcurrentInvocationLimitExceeded.
 */
export class ReservedConcurrencyExceededError extends KilnError {
  constructor(name: string, limit: number, used: number) {
    super('QuotaExceeded', 429, `Rate Exceeded. function "${name}" is at its reserved concurrency: ${used} of ${limit} invocations in flight; retry after 1 s`, {
      quota: 'reservedConcurrency',
      limit,
      used,
      retryAfterSeconds: 1,
    });
  }
}

/** How long a replica reuses a tenant's limits (a changed override takes this long to apply everywhere). */
const LIMITS_CACHE_MS = 5_000;
/**
 * A refused admission first checks whether usage that nobody released is still real (its job
 * finished, its session ended, but the control plane that would have released it died): members
 * admitted at least this long ago are checked against the jobs and sessions themselves.
 */
const RECONCILE_GRACE_MS = 30_000;
/**
 * At most one such check per tenant and quota every this long, on each replica: a tenant that
 * keeps hitting a large limit costs one pipelined pass over its older members per interval.
 */
const RECONCILE_EVERY_MS = 10_000;
/**
 * Executions admitted this long ago are dropped at the next admission whatever they are: the
 * last resort against usage leaked by a crash if no admission was ever refused to reconcile it.
 */
const EXECUTION_STALE_MS = 24 * 3600_000;

const LUA_DIR = fileURLToPath(new URL('../../src/tenancy/lua/', import.meta.url));
const lua = (file: string): string => readFileSync(LUA_DIR + file, 'utf8');

/** How the reconcile tells counted usage that is over: a job gone or finished, a session ended or lost. */
export interface UsageProbes {
  /** Of these job ids in a template's queue, the ones no longer queued or running. */
  finishedJobs(template: string, ids: string[]): Promise<string[]>;
  /** Of these session ids, the ones whose session is gone or lost. */
  endedSessions(ids: string[]): Promise<string[]>;
}

type AdmitExecution = (key: string, member: string, now: number, limit: number, staleBefore: number) => Promise<[number, number]>;
type AdmitSession = (key: string, id: string, memoryMB: number, now: number, sessionsLimit: number, memoryLimitMB: number) => Promise<[number, string?, number?]>;

/**
 * The one owner of quota checks and of the usage they count (per tenant, in Redis so every
 * replica sees the same): concurrent executions and live sessions (with their memory) are
 * admitted by Lua scripts that check and record in one step; functions are checked here and
 * again, atomically, by the function store as it creates one (functions/store.ts);
 * the request rate is counted per replica (api/rate-limit.ts asks for the limit here); volume
 * count and size are checked and recorded by the volume service's own script (volumes/service.ts
 * asks for the limits here).
 * Limits are the deployment's defaults (KILN_QUOTA_*) with the tenant record's overrides.
 */
export class Quotas {
  private readonly cache = new Map<string, { limits: QuotaLimits; until: number }>();
  private readonly reconciled = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly tenants: { findTenant(id: string): Promise<TenantRecord | undefined> },
    private readonly defaults: QuotaLimits,
    private readonly probes: UsageProbes,
  ) {
    redis.defineCommand('kilnAdmitExecution', { numberOfKeys: 1, lua: lua('admit-execution-1.lua') });
    redis.defineCommand('kilnAdmitSession', { numberOfKeys: 1, lua: lua('admit-session-1.lua') });
  }

  /** A tenant's limits: defaults, then its record's overrides (cached LIMITS_CACHE_MS). */
  async limits(tenant: string): Promise<QuotaLimits> {
    const hit = this.cache.get(tenant);
    if (hit && hit.until > Date.now()) return hit.limits;
    const record = await this.tenants.findTenant(tenant);
    const limits = { ...this.defaults };
    for (const q of QUOTAS) if (typeof record?.quotas[q] === 'number') limits[q] = record.quotas[q];
    if (this.cache.size >= 10_000) this.cache.clear();
    this.cache.set(tenant, { limits, until: Date.now() + LIMITS_CACHE_MS });
    return limits;
  }

  /**
   * Counts a job as in flight for its tenant, or throws QuotaExceeded. Resolves with how many of
   * the tenant's executions were in flight before it (fair share orders async jobs by it).
   */
  async admitExecution(tenant: string, template: string, id: string): Promise<number> {
    const limit = (await this.limits(tenant)).executions;
    const member = `${template}/${id}`;
    const admit = async (): Promise<[number, number]> => {
      const now = Date.now();
      return (this.redis as unknown as Record<'kilnAdmitExecution', AdmitExecution>).kilnAdmitExecution(this.keys.inflight(tenant), member, now, limit, now - EXECUTION_STALE_MS);
    };
    let [ok, used] = await admit();
    if (!ok && (await this.reconcile(tenant, 'executions', () => this.reconcileMembers(this.keys.inflight(tenant))))) [ok, used] = await admit();
    if (!ok) throw new QuotaExceededError(tenant, 'executions', limit, used);
    return used;
  }

  /**
   * Counts a job against its function's reserved concurrency (queued + running, as the executions
   * quota counts), or throws ReservedConcurrencyExceeded: the same script as the tenant's quota, on
   * the function's own set. `limit` 0 refuses every job.
   */
  async admitReserved(tenant: string, name: string, template: string, id: string, limit: number): Promise<void> {
    const key = this.keys.fnInflight(tenant, name);
    const member = `${template}/${id}`;
    const admit = async (): Promise<[number, number]> => {
      const now = Date.now();
      return (this.redis as unknown as Record<'kilnAdmitExecution', AdmitExecution>).kilnAdmitExecution(key, member, now, limit, now - EXECUTION_STALE_MS);
    };
    let [ok, used] = await admit();
    if (!ok && limit > 0 && (await this.reconcile(`${tenant}/${name}`, 'executions', () => this.reconcileMembers(key)))) [ok, used] = await admit();
    if (!ok) throw new ReservedConcurrencyExceededError(name, limit, used);
  }

  /** A job counted by admitReserved finished (or was never queued). */
  async releaseReserved(tenant: string, name: string, template: string, id: string): Promise<void> {
    await this.redis.zrem(this.keys.fnInflight(tenant, name), `${template}/${id}`);
  }

  /** The same release, appended to a transaction (executions/finished-writes.ts). */
  appendReleaseReserved(tx: ChainableCommander, tenant: string, name: string, template: string, id: string): void {
    tx.zrem(this.keys.fnInflight(tenant, name), `${template}/${id}`);
  }

  /** The job finished (or was never queued): it no longer counts. */
  async releaseExecution(tenant: string, template: string, id: string): Promise<void> {
    await this.redis.zrem(this.keys.inflight(tenant), `${template}/${id}`);
  }

  /** The same release, appended to a transaction (executions/finished-writes.ts folds it with a finished job's other writes). */
  appendRelease(tx: ChainableCommander, tenant: string, template: string, id: string): void {
    tx.zrem(this.keys.inflight(tenant), `${template}/${id}`);
  }

  /** Counts a session (and its sandbox's memory) for its tenant, or throws QuotaExceeded. */
  async admitSession(tenant: string, id: string, memoryMB: number): Promise<void> {
    const limits = await this.limits(tenant);
    const admit = (): Promise<[number, string?, number?]> =>
      (this.redis as unknown as Record<'kilnAdmitSession', AdmitSession>).kilnAdmitSession(this.keys.quotaSessions(tenant), id, memoryMB, Date.now(), limits.sessions, limits.memoryMB);
    let [ok, quota, used] = await admit();
    if (!ok && (await this.reconcile(tenant, 'sessions', () => this.reconcileSessions(tenant)))) [ok, quota, used] = await admit();
    if (!ok) {
      const q = quota === 'memoryMB' ? 'memoryMB' : 'sessions';
      throw new QuotaExceededError(tenant, q, limits[q], Number(used ?? 0));
    }
  }

  /** The session ended, was lost or was never made: it and its memory no longer count. */
  async releaseSession(tenant: string, id: string): Promise<void> {
    await this.redis.hdel(this.keys.quotaSessions(tenant), id);
  }

  /**
   * Throws QuotaExceeded when a tenant that has `count` functions may not make another; else
   * resolves with its limit, which the function store checks again as it creates, atomically.
   */
  async checkFunctions(tenant: string, count: number): Promise<number> {
    const limit = (await this.limits(tenant)).functions;
    if (count >= limit) throw new QuotaExceededError(tenant, 'functions', limit, count);
    return limit;
  }

  /** The error for a request over the rate (api/rate-limit.ts counts the rate; the error is named here with the others). */
  rateExceeded(tenant: string, limit: number): QuotaExceededError {
    return new QuotaExceededError(tenant, 'requestsPerSecond', limit, limit);
  }

  /** Runs `fn` unless it ran for this tenant and quota within RECONCILE_EVERY_MS; true when it freed anything. */
  private async reconcile(tenant: string, quota: QuotaName, fn: () => Promise<number>): Promise<boolean> {
    const key = `${quota}\0${tenant}`;
    const now = Date.now();
    if ((this.reconciled.get(key) ?? 0) > now - RECONCILE_EVERY_MS) return false;
    if (this.reconciled.size >= 10_000) this.reconciled.clear();
    this.reconciled.set(key, now);
    const freed = await fn();
    if (freed > 0) log('info', 'quota usage reconciled: released what no control plane released', { tenant, quota, freed });
    return freed > 0;
  }

  /** Drops the members of an in-flight set (`<template>/<job id>`) whose jobs finished. */
  private async reconcileMembers(key: string): Promise<number> {
    const old = await this.redis.zrangebyscore(key, '-inf', Date.now() - RECONCILE_GRACE_MS);
    const byTemplate = new Map<string, string[]>();
    for (const member of old) {
      const slash = member.indexOf('/');
      const template = member.slice(0, slash);
      byTemplate.set(template, [...(byTemplate.get(template) ?? []), member.slice(slash + 1)]);
    }
    let freed = 0;
    for (const [template, ids] of byTemplate) {
      const finished = await this.probes.finishedJobs(template, ids);
      if (finished.length) freed += await this.redis.zrem(key, ...finished.map((id) => `${template}/${id}`));
    }
    return freed;
  }

  private async reconcileSessions(tenant: string): Promise<number> {
    const key = this.keys.quotaSessions(tenant);
    const all = await this.redis.hgetall(key);
    const before = Date.now() - RECONCILE_GRACE_MS;
    const old = Object.entries(all)
      .filter(([, v]) => Number(v.split(':')[1] ?? 0) < before)
      .map(([id]) => id);
    const ended = old.length ? await this.probes.endedSessions(old) : [];
    return ended.length ? this.redis.hdel(key, ...ended) : 0;
  }
}
