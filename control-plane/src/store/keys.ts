import { DEFAULT_TENANT } from '../tenancy/principal.js';

/**
 * Every Redis key Kiln writes, in one place. All start with the deployment prefix so that
 * several deployments (and every test) can share one Redis without seeing each other.
 */
export class Keys {
  constructor(readonly prefix: string) {}

  /**
   * Host uid ranges claimed by local executors (HASH, owned by platforms/uids/ranges.ts). The one
   * key not under the deployment prefix: uids belong to the host, so every deployment on it that
   * shares this Redis must see the others' claims. Per host name, so hosts sharing a Redis do not
   * use up each other's uid space.
   */
  static hostUidRanges(host: string): string {
    return `kiln:host-uids:${host}`;
  }

  sandbox(id: string): string {
    return `${this.prefix}:sbx:${id}`;
  }
  /** All sandbox ids of a template (SET). */
  sandboxes(template: string): string {
    return `${this.prefix}:sbxs:${template}`;
  }
  /** Idle sandboxes with no function loaded, per runner (LIST, most recently used first). */
  warm(template: string, runner: string): string {
    return `${this.prefix}:warm:${template}:${runner}`;
  }
  /** Idle instances of one function version (LIST, most recently used first). */
  hot(template: string, functionKey: string): string {
    return `${this.prefix}:hot:${template}:${functionKey}`;
  }
  executor(id: string): string {
    return `${this.prefix}:exe:${id}`;
  }
  /** Executors of a template scored by how many sandboxes they hold (ZSET). */
  executors(template: string): string {
    return `${this.prefix}:exes:${template}`;
  }
  /** A control-plane replica's heartbeat (STRING with a TTL), so a replica that stops can tell whether it is the last. */
  replica(id: string): string {
    return `${this.prefix}:replica:${id}`;
  }
  /** Held by the one control-plane replica that runs a template's pool keeper this round. */
  keeperLock(template: string): string {
    return `${this.prefix}:keeper:${template}`;
  }
  /** Template definitions by name (HASH of JSON). */
  get templates(): string {
    return `${this.prefix}:templates`;
  }
  /** Bumped on every template change, so replicas reload only when something changed. */
  get templatesVersion(): string {
    return `${this.prefix}:templates:v`;
  }
  /** Hash of each template file as last seeded, so an edited file wins over the stored copy. */
  get templateSeeds(): string {
    return `${this.prefix}:templates:seeds`;
  }
  /** Consecutive failed health checks per executor of a template (HASH). */
  executorFailures(template: string): string {
    return `${this.prefix}:exefail:${template}`;
  }
  /**
   * Where one tenant's function keys live. Function names are per tenant; the default tenant
   * keeps the layout from before tenants (`fn:<name>`), so its records need no migration, and
   * every other tenant's keys carry the tenant (`fn:<tenant>:<name>`). Neither names nor tenant
   * ids may hold a colon, so the two layouts cannot meet.
   */
  private fnSpace(tenant: string): string {
    return tenant === DEFAULT_TENANT ? '' : `${tenant}:`;
  }
  /** A function's $LATEST record (JSON string). */
  fn(tenant: string, name: string): string {
    return `${this.prefix}:fn:${this.fnSpace(tenant)}${name}`;
  }
  /** A tenant's function names (ZSET, score 0, so ZRANGEBYLEX pages them in name order). */
  fns(tenant: string): string {
    return tenant === DEFAULT_TENANT ? `${this.prefix}:fns` : `${this.prefix}:fns:${tenant}`;
  }
  /** A function's published versions: version number → JSON record (HASH). */
  fnVersions(tenant: string, name: string): string {
    return `${this.prefix}:fnver:${this.fnSpace(tenant)}${name}`;
  }
  /** The last version number handed out for a function (INCR). */
  fnVersionSeq(tenant: string, name: string): string {
    return `${this.prefix}:fnverseq:${this.fnSpace(tenant)}${name}`;
  }
  /** A function's aliases: alias name → JSON record (HASH). */
  fnAliases(tenant: string, name: string): string {
    return `${this.prefix}:fnalias:${this.fnSpace(tenant)}${name}`;
  }
  /** Async invocations that failed every attempt: id → JSON (HASH). */
  fnDeadLetters(tenant: string, name: string): string {
    return `${this.prefix}:fndl:${this.fnSpace(tenant)}${name}`;
  }
  /** A function's URL configs: qualifier ('' for the unqualified function) → JSON (HASH; functions/urls.ts). */
  fnUrls(tenant: string, name: string): string {
    return `${this.prefix}:fnurl:${this.fnSpace(tenant)}${name}`;
  }
  /**
   * A function's settings beside its versions (HASH; functions/settings.ts): `concurrency` (its
   * reserved concurrency), `tags` (JSON), `eic:<qualifier>` (an event invoke config, JSON).
   */
  fnSettings(tenant: string, name: string): string {
    return `${this.prefix}:fnset:${this.fnSpace(tenant)}${name}`;
  }
  /** A tenant's reserved concurrency by function name (HASH; functions/settings.ts), summed by GetAccountSettings. */
  fnReserved(tenant: string): string {
    return `${this.prefix}:fnreserved:${tenant}`;
  }
  /** A function's invocations in flight, counted against its reserved concurrency like `inflight` (ZSET; tenancy/quotas.ts). */
  fnInflight(tenant: string, name: string): string {
    return `${this.prefix}:quota:fninflight:${this.fnSpace(tenant)}${name}`;
  }
  /** Which function a function URL id serves: JSON {tenant, name, qualifier} (STRING; functions/urls.ts). */
  fnUrlId(id: string): string {
    return `${this.prefix}:fnurlid:${id}`;
  }
  /** A stored blob (code packages) when KILN_BLOB_STORE=redis, and where blobs were before the other stores. */
  blob(key: string): string {
    return `${this.prefix}:blob:${key}`;
  }
  /** A tenant's finished executions, newest first: finish time → summary (ZSET; executions/history.ts). */
  executions(tenant: string): string {
    return `${this.prefix}:xhist:${tenant}`;
  }
  /** A function's recent invocations: finish time → "id status totalMs" (ZSET; observability/function-stats.ts). */
  functionStats(tenant: string, fn: string): string {
    return `${this.prefix}:fnstats:${tenant}:${fn}`;
  }
  /** A template's start counts and start-latency histogram per start type (HASH; observability/start-latency.ts). */
  startLatency(template: string): string {
    return `${this.prefix}:startlat:${template}`;
  }
  /** A terminal ticket by the SHA-256 of its secret: who it lets in, to which session (STRING with TTL; sessions/pty-tickets.ts). */
  ptyTicket(hash: string): string {
    return `${this.prefix}:ptyticket:${hash}`;
  }
  /** Blobs to delete once due: blob key → due time in ms (ZSET; storage/retired.ts). */
  retiredBlobs(): string {
    return `${this.prefix}:blobs:retired`;
  }
  /** Set once the blobs of Redis were moved to the configured store (storage/migrate.ts). */
  blobsMigrated(): string {
    return `${this.prefix}:blobs:migrated`;
  }
  /** One session's record (STRING, JSON). */
  session(id: string): string {
    return `${this.prefix}:ses:${id}`;
  }
  /** All session ids (SET). */
  get sessions(): string {
    return `${this.prefix}:sess`;
  }
  /** Held by the one control-plane replica that reaps expired and idle sessions this round. */
  get sessionReaperLock(): string {
    return `${this.prefix}:sessreaper`;
  }
  /** Held while a session is paused, resumed, hibernated or archived (sessions/lifecycle.ts). */
  sessionTransition(id: string): string {
    return `${this.prefix}:sestrans:${id}`;
  }
  /** One workspace snapshot's record (STRING, JSON; sessions/snapshots.ts). */
  snapshot(id: string): string {
    return `${this.prefix}:snap:${id}`;
  }
  /** All snapshot ids (SET). */
  get snapshots(): string {
    return `${this.prefix}:snaps`;
  }
  /** A tenant's snapshot ids (SET): what its snapshot quota counts. */
  tenantSnapshots(tenant: string): string {
    return `${this.prefix}:snaps:${tenant}`;
  }
  /** Tenants made over the admin API: id → JSON (HASH, owned by tenancy/keyring.ts). */
  /** A tenant's egress secrets (HASH name → JSON with the value sealed; egress/secrets.ts). */
  egressSecrets(tenant: string): string {
    return `${this.prefix}:egress-secrets:${tenant}`;
  }
  /** What an administrator lets a tenant's sessions and functions reach beyond their templates (STRING, policy JSON; egress/grants.ts). */
  egressGrant(tenant: string): string {
    return `${this.prefix}:egress-grant:${tenant}`;
  }
  get tenants(): string {
    return `${this.prefix}:tenants`;
  }
  /** API keys made over the admin API: key id → JSON with the key's hash, never the key (HASH, tenancy/keyring.ts). */
  get apiKeys(): string {
    return `${this.prefix}:apikeys`;
  }
  /**
   * A tenant's executions in flight (queued or running): `<template>/<job id>` scored by when it
   * was admitted (ZSET, owned by tenancy/quotas.ts).
   */
  inflight(tenant: string): string {
    return `${this.prefix}:quota:inflight:${tenant}`;
  }
  /** A tenant's live sessions: session id → `<memoryMB>:<admitted at ms>` (HASH, owned by tenancy/quotas.ts). */
  quotaSessions(tenant: string): string {
    return `${this.prefix}:quota:sessions:${tenant}`;
  }
  /**
   * A create's `Idempotency-Key` (STRING, owned by api/idempotent-create.ts): the request's hash
   * and, once done, its answer. `keyHash` is a hash of the client's key, never the key itself.
   */
  idempotentCreate(tenant: string, resource: string, keyHash: string): string {
    return `${this.prefix}:idem:${tenant}:${resource}:${keyHash}`;
  }
  /** BullMQ's own prefix for this deployment's queues. */
  get queuePrefix(): string {
    return `${this.prefix}:q`;
  }
}
