import { canReach, DEFAULT_TENANT, type Principal } from '../tenancy/principal.js';
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Agent, AgentPool } from '../agent/client.js';
import { SandboxBusyError, SandboxHasOtherFunctionError } from '../agent/errors.js';
import { SessionAgent } from '../agent/session-client.js';
import { ValidationError } from '../errors.js';
import type { Outcome } from '../invocation/contract.js';
import { languageOfRunner, type Language } from '../invocation/languages.js';
import { eventText, inlineFunction, invokeRequest, outcomeOf } from '../invocation/request.js';
import { log } from '../log.js';
import type { SandboxRecords } from '../scheduler/records.js';
import type { Lease, Scheduler } from '../scheduler/scheduler.js';
import type { Quotas } from '../tenancy/quotas.js';
import type { ExecutorLoss, PoolSignals } from '../scheduler/signals.js';
import type { Keys } from '../store/keys.js';
import type { TemplateRegistry } from '../templates/registry.js';
import type { EgressPlacement, EgressRequest } from '../egress/placement.js';
import { templateRunners } from '../templates/template.js';
import { SessionBusyError, SessionCodeConflictError, SessionLostError, SessionNotFoundError, SessionPausedError, UnsupportedResourcesError } from './errors.js';
import { bindSessionExport, exportNameOf, NfsDisabledError, nfsUrl, nfsView, unbindSessionExport, validateAllowList, type NfsExportInput, type SessionNfs, type SessionNfsView } from './nfs.js';
import { SessionStore, type SessionRecord } from './records.js';
import { VolumeNotFoundError, type VolumeMountInput, type VolumeService, type VolumeView } from '../volumes/service.js';
import { accessTokenMatches, newAccessToken, SessionAccessDeniedError } from './access-token.js';

/** Function key under which session leases are taken: it has no hot instances, so warm or cold. */
const SESSION_FUNCTION_KEY = 'session';
const LEASE_WAIT_MS = 30_000;
/** The sandbox lease outlives the session's expiry a little, so the reaper acts first. */
const LEASE_MARGIN_MS = 60_000;

/**
 * How long a lost session's record stays (GET and list answer `status: "lost"`, other operations
 * 410 SessionLost); after that it is removed and the session is unknown (404), like one deleted.
 */
export const LOST_SESSION_RETENTION_MS = 3_600_000;

export const SESSION_LIMITS = {
  defaultTimeoutMs: 3_600_000,
  maxTimeoutMs: 86_400_000,
  defaultIdleTimeoutMs: 600_000,
};

export interface CreateSessionInput {
  template?: string;
  timeoutMs?: number;
  idleTimeoutMs?: number;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  resources?: { memoryMB?: number; diskMB?: number; maxProcesses?: number; maxOpenFiles?: number };
  /** How /workspace is exported over NFS (default read-write, every client). */
  nfs?: NfsExportInput;
  /** The session's own egress policy (egress/placement.ts), from its first connection. */
  network?: EgressRequest['network'];
  /** The tenant's secrets to bind; their placeholders join `env`. */
  secrets?: string[];
  /** Paused instead of ended after idleTimeoutMs (default false). */
  autoPause?: boolean;
  /** Calls that need the sandbox resume it when paused (default true); false answers 409 SessionPaused. */
  autoResume?: boolean;
  /** Named volumes bound into a sandbox booted for this session (volumes/service.ts). */
  volumes?: VolumeMountInput[];
}

/**
 * Pause and resume (sessions/lifecycle.ts), as the service needs them: a paused session is
 * resumed before any call that needs its sandbox, and what an ended one leaves is removed.
 */
export interface SessionLifecycleHooks {
  /** Resumes a paused or hibernated session (autoResume); the record after. */
  resumeFor(r: SessionRecord): Promise<SessionRecord>;
  /** Removes what an ended session leaves besides its sandbox (a hibernated one's workspace tar). */
  ended(r: SessionRecord): Promise<void>;
  /** Hibernates a paused session of a full template to free a slot (make-room.ts); true when one was. */
  makeRoom(template: string): Promise<boolean>;
}

/** Deployment-wide session settings. */
export interface SessionServiceOptions {
  /** Host name NFS clients use (KILN_NFS_HOST); undefined when NFS export is off. */
  nfsHost?: string;
  /** Bound port of the control plane's NFS gateway (KILN_NFS_PORT); absent = executors' own ports. */
  nfsGatewayPort?: number;
  /**
   * Counts each tenant's live sessions and their sandboxes' memory (tenancy/quotas.ts): admitted
   * before a sandbox is leased, released when the session ends or is lost.
   */
  quotas?: Pick<Quotas, 'admitSession' | 'releaseSession'>;
  /** Puts a session's own egress policy and secrets on its sandbox (`network`, `secrets` at create). */
  egress?: Pick<EgressPlacement, 'plan' | 'apply'>;
  /** Named volumes (`volumes` at create); absent: a create that names one is refused. */
  volumes?: Pick<VolumeService, 'mountsFor' | 'forget' | 'created' | 'fill' | 'syncOut' | 'released'>;
}

export interface SessionView {
  id: string;
  /** The tenant that owns it. */
  tenant: string;
  template: string;
  /** `lost`: its sandbox went without anyone ending it (its executor died); see `lostReason`. `paused`: frozen or hibernated (lifecycle.ts). */
  status: 'running' | 'paused' | 'lost';
  /** Only when paused: its /workspace is in the blob store and its sandbox freed (resume restores the files, not the processes). */
  hibernated?: boolean;
  /** When it was paused (ISO 8601); only when paused. */
  pausedAt?: string;
  autoPause: boolean;
  autoResume: boolean;
  /** How it was last resumed, if ever. */
  lastResumeType?: 'thawed' | 'restored';
  /** Why it was lost (e.g. "executor exited"); only when lost. */
  lostReason?: string;
  /** When it was lost (ISO 8601); only when lost. */
  lostAt?: string;
  createdAt: string;
  expiresAt: string;
  lastActivityAt: string;
  timeoutMs: number;
  idleTimeoutMs: number;
  metadata: Record<string, string>;
  /** libnfs URL of the session's /workspace; absent when its executor serves no NFS. */
  nfsUrl?: string;
  nfs?: SessionNfsView;
  /** Named volumes bound into its sandbox, as asked for at create. */
  volumes?: { name: string; path: string; readOnly: boolean }[];
}

export interface ExecuteInput {
  code: string;
  language?: Language;
  event?: unknown;
  timeoutMs?: number;
}

/** How an execute ended; a custom runtime's bytes come back as `resultBase64`, as in execution records. */
export type ExecuteResult = Outcome & {
  logs: string;
  durationMs: number;
  /** True when the handler took the sandbox down (timeout, crash) and the session ended. */
  sessionEnded: boolean;
};

/** What the API shows of a session record. */
export function view(r: SessionRecord): SessionView {
  return {
    id: r.id,
    tenant: r.tenant ?? DEFAULT_TENANT,
    template: r.template,
    status: r.state === 'lost' ? 'lost' : r.state === 'paused' || r.state === 'hibernated' ? 'paused' : 'running',
    ...(r.state === 'paused' || r.state === 'hibernated' ? { hibernated: r.state === 'hibernated', pausedAt: new Date(r.pausedAt ?? 0).toISOString() } : {}),
    autoPause: r.autoPause ?? false,
    autoResume: r.autoResume ?? true,
    ...(r.lastResumeType ? { lastResumeType: r.lastResumeType } : {}),
    ...(r.state === 'lost' ? { lostReason: r.lostReason ?? 'sandbox gone', lostAt: new Date(r.lostAt ?? 0).toISOString() } : {}),
    createdAt: new Date(r.createdAt).toISOString(),
    expiresAt: new Date(r.expiresAt).toISOString(),
    lastActivityAt: new Date(r.lastActivityAt).toISOString(),
    timeoutMs: r.timeoutMs,
    idleTimeoutMs: r.idleTimeoutMs,
    metadata: r.metadata,
    ...(r.nfs ? { nfsUrl: nfsUrl(exportNameOf(r.id, r.nfs), r.nfs), nfs: nfsView(exportNameOf(r.id, r.nfs), r.nfs) } : {}),
    ...(r.volumes?.length ? { volumes: r.volumes } : {}),
  };
}

/**
 * Sessions: sandboxes leased to one client until deleted, expired or idle. A session's
 * sandbox never goes back to the pool (its files and processes belong to the client); ending
 * a session destroys it, which kills every process in its PID namespace.
 *
 * A session whose sandbox goes without anyone ending it (its executor died) is `lost`: kept
 * with its reason for LOST_SESSION_RETENTION_MS, so the client can tell it from one deleted.
 * The scheduler's executor-lost signal marks them at once on the replica that saw the loss;
 * the session reaper (`markOrphans`) catches the rest from the sandbox records.
 */
export class SessionService {
  readonly store: SessionStore;
  private lifecycle: SessionLifecycleHooks | undefined;

  constructor(
    redis: Redis,
    keys: Keys,
    private readonly templates: TemplateRegistry,
    private readonly scheduler: Scheduler,
    private readonly records: Pick<SandboxRecords, 'executor' | 'executorIds' | 'extend' | 'existing'>,
    private readonly agents: AgentPool,
    signals: Pick<PoolSignals, 'onExecutorLost'>,
    private readonly opts: SessionServiceOptions = {},
  ) {
    this.store = new SessionStore(redis, keys);
    signals.onExecutorLost((loss) => this.executorLost(loss));
  }

  /** A full pool makes room by hibernating a paused session, once the lifecycle is wired in. */
  private readonly makeRoom = (template: string): Promise<boolean> => this.lifecycle?.makeRoom(template) ?? Promise.resolve(false);

  /** Wires pause and resume in (lifecycle.ts is built on this service, so after construction). */
  useLifecycle(hooks: SessionLifecycleHooks): void {
    this.lifecycle = hooks;
  }

  /**
   * Exports a session's /workspace from a new sandbox (a hibernated session restored), with the
   * options of its old export; undefined when NFS is off or the executor serves none.
   */
  async bindNfs(r: SessionRecord, lease: Pick<Lease, 'executor' | 'sandboxId'>): Promise<SessionNfs | undefined> {
    if (!r.nfs || this.opts.nfsHost === undefined) return undefined;
    return bindSessionExport(this.agents.get(lease.executor), r.id, lease.sandboxId, { readOnly: r.nfs.readOnly, allow: r.nfs.allow }, {
      host: this.opts.nfsHost,
      ...(this.opts.nfsGatewayPort !== undefined ? { gatewayPort: this.opts.nfsGatewayPort } : {}),
    }, r.nfs.exportName);
  }

  /** The longest `timeoutMs` a session of `template` may have: the template's `maxSessionTimeoutMs`, else 24 h. */
  maxTimeoutMs(template: string): number {
    return this.templates.get(template).maxSessionTimeoutMs ?? SESSION_LIMITS.maxTimeoutMs;
  }

  async create(input: CreateSessionInput, who: Principal): Promise<SessionView> {
    const template = this.templates.get(input.template ?? 'nodejs');
    const timeoutMs = input.timeoutMs ?? SESSION_LIMITS.defaultTimeoutMs;
    const maxTimeoutMs = template.maxSessionTimeoutMs ?? SESSION_LIMITS.maxTimeoutMs;
    if (timeoutMs > maxTimeoutMs) throw new ValidationError(`timeoutMs must be at most ${maxTimeoutMs} (template "${template.name}"'s maxSessionTimeoutMs${template.maxSessionTimeoutMs === undefined ? ', 24 h by default' : ''}); got ${timeoutMs}`);
    for (const [field, wanted] of Object.entries(input.resources ?? {})) {
      const offered = (template.resources as Record<string, number | undefined>)[field];
      if (wanted !== undefined && offered !== undefined && wanted > offered) throw new UnsupportedResourcesError(field, wanted, offered);
    }
    if (input.nfs && this.opts.nfsHost === undefined) throw new NfsDisabledError();
    const nfsOptions = { readOnly: input.nfs?.readOnly ?? false, allow: validateAllowList(input.nfs?.allow) };
    const runner = templateRunners(template)[0] as string;
    const id = `ses_${randomUUID().replaceAll('-', '')}`;
    // Checked before a sandbox is taken: a policy beyond the tenant's reach costs no sandbox.
    const egress = input.network !== undefined || input.secrets?.length ? await this.egressPlacement().plan(who.tenant, template.name, input, 'the new session') : undefined;
    const volumeInput = input.volumes ?? [];
    if (volumeInput.length > 0 && !this.opts.volumes) throw new ValidationError('volumes: this deployment has no volumes');
    // Checked (and counted as the volumes' user) before a sandbox is taken: an unknown volume costs none.
    const volumeMounts = volumeInput.length > 0 && this.opts.volumes ? await this.opts.volumes.mountsFor(id, volumeInput, who, template) : [];
    // Counted before a sandbox is taken, so a tenant over its quota takes none from the pool.
    try {
      await this.opts.quotas?.admitSession(who.tenant, id, template.resources.memoryMB);
    } catch (err) {
      await this.opts.volumes?.forget(id, volumeMounts);
      throw err;
    }
    // A session with volumes boots its own sandbox with them bound (a cold start): a warm one
    // was booted before anyone knew its volumes, and mounts are never added to a running sandbox.
    const take = (): Promise<Lease> =>
      volumeMounts.length > 0
        ? this.scheduler.acquireFresh(template, runner, volumeMounts, LEASE_WAIT_MS, timeoutMs + LEASE_MARGIN_MS, this.makeRoom)
        : this.scheduler.acquire(template, runner, SESSION_FUNCTION_KEY, LEASE_WAIT_MS, timeoutMs + LEASE_MARGIN_MS, [], this.makeRoom);
    let lease: Lease;
    try {
      // A sandbox that fails to boot is tried again there (scheduler.acquire), as for executions;
      // a full pool makes room there by hibernating a paused session (make-room.ts).
      lease = await take();
    } catch (err) {
      await this.release(who.tenant, id);
      await this.opts.volumes?.forget(id, volumeMounts);
      throw err;
    }
    let nfs: SessionNfs | undefined;
    let egressEnv: Record<string, string> = {};
    try {
      // On the sandbox before the session exists: no process of it runs under the template's policy.
      if (egress) egressEnv = await this.egressPlacement().apply(this.agents.get(lease.executor), lease.sandboxId, who.tenant, template.name, egress, 'the new session');
      // Synced volumes get their current generation before anyone holds the session (volumes/synced.ts).
      if (volumeMounts.some((m) => m.synced)) await this.opts.volumes?.fill(new SessionAgent(this.agents.get(lease.executor), lease.sandboxId), who.tenant, volumeInput.map((v) => v.name), volumeMounts);
      // Bound before the record exists, so a session that is visible is already exported.
      if (this.opts.nfsHost !== undefined) nfs = await bindSessionExport(this.agents.get(lease.executor), id, lease.sandboxId, nfsOptions, {
          host: this.opts.nfsHost,
          ...(this.opts.nfsGatewayPort !== undefined ? { gatewayPort: this.opts.nfsGatewayPort } : {}),
        });
    } catch (err) {
      await this.scheduler.destroy(lease);
      await this.release(who.tenant, id);
      await this.opts.volumes?.forget(id, volumeMounts);
      throw err;
    }
    const now = Date.now();
    const record: SessionRecord = {
      id,
      tenant: who.tenant,
      template: template.name,
      runner,
      sandboxId: lease.sandboxId,
      executorId: lease.executor.id,
      owner: lease.owner,
      createdAt: now,
      expiresAt: now + timeoutMs,
      timeoutMs,
      idleTimeoutMs: input.idleTimeoutMs ?? SESSION_LIMITS.defaultIdleTimeoutMs,
      lastActivityAt: now,
      env: { ...input.env, ...egressEnv },
      metadata: input.metadata ?? {},
      accessToken: newAccessToken(),
      ...(nfs ? { nfs } : {}),
      ...(input.autoPause ? { autoPause: true } : {}),
      ...(input.autoResume === false ? { autoResume: false } : {}),
      ...(volumeMounts.length > 0 ? { volumes: volumeInput.map((v) => ({ name: v.name, path: v.path, readOnly: v.readOnly ?? false })), volumeMounts } : {}),
    };
    try {
      await this.store.put(record);
    } catch (err) {
      await this.scheduler.destroy(lease);
      await this.release(who.tenant, id);
      await this.opts.volumes?.forget(id, volumeMounts);
      throw err;
    }
    await this.opts.volumes?.created(id, volumeMounts);
    return view(record);
  }

  private egressPlacement(): Pick<EgressPlacement, 'plan' | 'apply'> {
    if (!this.opts.egress) throw new ValidationError('this deployment takes no per-session network policy or secrets');
    return this.opts.egress;
  }

  async get(id: string, who: Principal): Promise<SessionView> {
    return view(await this.record(id, who));
  }

  /** The caller's sessions (an administrator's: everyone's) of a template (optional) whose metadata has every given key=value. */
  async list(filter: { template?: string; metadata?: Record<string, string> }, who: Principal): Promise<SessionView[]> {
    const all = await this.store.all();
    return all
      .filter((r) => canReach(who, r.tenant))
      .filter((r) => !filter.template || r.template === filter.template)
      .filter((r) => Object.entries(filter.metadata ?? {}).every(([k, v]) => r.metadata[k] === v))
      .sort((a, b) => a.createdAt - b.createdAt)
      .map(view);
  }

  /** Ends a session: its record goes first, then the sandbox and every process in it. */
  async delete(id: string, who: Principal, reason = 'deleted'): Promise<void> {
    const r = await this.record(id, who);
    // A read-write synced volume is stored before the session goes. A sync that fails (too large,
    // stalled) is logged and the session ends anyway, its volume at its previous generation: code in
    // the sandbox must not be able to make its own session undeletable. A client that wants to
    // know syncs first (POST …/volumes/{name}/sync answers the error).
    await this.end(r, reason);
  }

  /**
   * Stores every read-write synced volume of a session (volumes/synced.ts). `strict` (a
   * hibernation): a failure is thrown, so the session stays paused and nothing is lost unasked,
   * unless the sandbox is gone (its writes are gone with it). Else (a session's end, by DELETE or
   * the reaper) failures are logged and the previous generation stays current.
   */
  async syncVolumes(r: SessionRecord, strict: boolean): Promise<void> {
    const mounts = (r.volumeMounts ?? []).map((m, i) => ({ m, name: r.volumes?.[i]?.name ?? '' })).filter(({ m }) => m.synced && !m.readOnly);
    if (mounts.length === 0 || !this.opts.volumes) return;
    const executor = await this.records.executor(r.executorId);
    let thawed: Agent | undefined;
    try {
      if (!executor) throw new SessionLostError(r.id, 'executor exited');
      const agent = this.agents.get(executor);
      // tar runs inside the sandbox, which must run for it.
      if (r.state === 'paused') await agent.resumeSandbox(r.sandboxId).then(() => (thawed = agent));
      for (const { m, name } of mounts) await this.opts.volumes.syncOut(new SessionAgent(agent, r.sandboxId), r.tenant ?? DEFAULT_TENANT, name, m, r.id);
    } catch (err) {
      const gone = !executor || (await this.records.existing([r.sandboxId])).size === 0;
      if (strict && !gone) {
        // The session stays as it was: a paused one is paused again.
        if (thawed) await thawed.pauseSandbox(r.sandboxId).catch((e: unknown) => log('warn', 'could not pause a session again after its volumes\' sync failed', { sessionId: r.id, error: String(e) }));
        throw err;
      }
      log('warn', 'could not sync a session\'s volumes at its end; their previous generations stay current', { sessionId: r.id, error: String(err) });
    }
  }

  /** A restored session's new sandbox gets its synced volumes' current generations, as at create. */
  async fillVolumes(r: SessionRecord, lease: Lease): Promise<void> {
    const mounts = r.volumeMounts ?? [];
    if (!mounts.some((m) => m.synced)) return;
    await this.opts.volumes?.fill(new SessionAgent(this.agents.get(lease.executor), lease.sandboxId), r.tenant ?? DEFAULT_TENANT, (r.volumes ?? []).map((v) => v.name), mounts);
  }

  /** `POST /sessions/{id}/volumes/{name}/sync`: stores the mounted volume as its next generation. */
  async syncVolume(id: string, name: string, who: Principal): Promise<VolumeView> {
    const { record, agent } = await this.open(id, who);
    const i = (record.volumes ?? []).findIndex((v) => v.name === name);
    const mount = record.volumeMounts?.[i];
    if (i < 0 || !mount || !this.opts.volumes) throw new VolumeNotFoundError(name);
    return this.opts.volumes.syncOut(agent, record.tenant ?? DEFAULT_TENANT, name, mount, record.id);
  }

  /** Ends a session if this caller is the one that removes its record. */
  async end(r: SessionRecord, reason: string, synced = false): Promise<boolean> {
    // Before the record goes: once it is gone, another session may claim the volume for writing.
    if (!synced && r.state !== 'lost' && r.state !== 'hibernated') await this.syncVolumes(r, false);
    if (!(await this.store.remove(r.id))) return false;
    log('debug', 'session ended', { sessionId: r.id, sandboxId: r.sandboxId, reason });
    await this.release(r.tenant ?? DEFAULT_TENANT, r.id);
    // A hibernated session has no sandbox: what it left is its workspace tar.
    if (r.state === 'hibernated') {
      await this.lifecycle?.ended(r).catch((err: unknown) => log('warn', 'could not remove an ended session\'s hibernation blob', { sessionId: r.id, error: String(err) }));
      // Its synced volumes were stored at its hibernation.
      await this.opts.volumes?.released(r.id, r.volumeMounts ?? []);
      return true;
    }
    const executor = r.state === 'lost' ? undefined : await this.records.executor(r.executorId);
    if (executor) {
      // Cut NFS first, so no client writes land between the end and the sandbox's removal.
      // Destroying the sandbox drops the export too, so a failure here only costs a log line.
      if (r.nfs) await unbindSessionExport(this.agents.get(executor), exportNameOf(r.id, r.nfs)).catch((err: unknown) => log('debug', 'could not unbind the session export', { sessionId: r.id, error: String(err) }));
      await this.scheduler.destroy({ template: r.template, sandboxId: r.sandboxId, executor });
    } else await this.scheduler.forget(r.template, r.sandboxId);
    await this.opts.volumes?.released(r.id, r.volumeMounts ?? []);
    return true;
  }

  /** Counts as activity; `timeoutMs` also moves the expiry to now + timeoutMs. */
  async keepalive(id: string, who: Principal, timeoutMs?: number): Promise<SessionView> {
    // Owner first: another tenant must not move this session's expiry.
    const owned = await this.record(id, who);
    const maxTimeoutMs = this.templates.has(owned.template) ? this.maxTimeoutMs(owned.template) : SESSION_LIMITS.maxTimeoutMs;
    if (timeoutMs !== undefined && timeoutMs > maxTimeoutMs) throw new ValidationError(`timeoutMs must be at most ${maxTimeoutMs}; got ${timeoutMs}`);
    // A paused session's lease is held for its pause (lifecycle.ts): resume it (or 409) first.
    if (owned.state === 'paused' || owned.state === 'hibernated') await this.live(id);
    const now = Date.now();
    const r = await this.store.touch(id, now, timeoutMs === undefined ? undefined : now + timeoutMs);
    if (!r) throw new SessionNotFoundError(id);
    if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
    // Keep the scheduler's lease ahead of the session so no one reclaims the sandbox.
    if (timeoutMs !== undefined && !(await this.records.extend(r.sandboxId, r.owner, r.expiresAt + LEASE_MARGIN_MS))) {
      throw await this.lost(r, 'sandbox gone');
    }
    return view(r);
  }

  /** The session's access token (access-token.ts), for its tenant only. */
  async accessToken(id: string, who: Principal): Promise<string | undefined> {
    return (await this.record(id, who)).accessToken;
  }

  /**
   * As `open`, for a caller that presents the session's access token instead of a key (the E2B
   * in-sandbox surface): 401 SessionAccessDenied, one answer for an unknown id and a wrong token.
   */
  async openWithToken(id: string, token: string | undefined): Promise<{ record: SessionRecord; agent: SessionAgent }> {
    const r = await this.store.get(id);
    if (!r || !accessTokenMatches(r.accessToken, token)) throw new SessionAccessDeniedError(id);
    return this.live(id);
  }

  /** The session's sandbox RPCs, after recording activity. 410 SessionLost for a lost session. */
  async open(id: string, who: Principal): Promise<{ record: SessionRecord; agent: SessionAgent }> {
    // Owner first: another tenant's request must not even count as activity.
    await this.record(id, who);
    return this.live(id);
  }

  private async live(id: string): Promise<{ record: SessionRecord; agent: SessionAgent }> {
    let r = await this.store.touch(id, Date.now());
    if (!r) throw new SessionNotFoundError(id);
    if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
    if (r.state === 'paused' || r.state === 'hibernated') {
      if (r.autoResume === false || !this.lifecycle) throw new SessionPausedError(id);
      r = await this.lifecycle.resumeFor(r);
    }
    // The sandbox record is what says the sandbox lives: another replica may have dropped its
    // executor (this one's cached handle would still answer with the dead address).
    if ((await this.records.existing([r.sandboxId])).size === 0) throw await this.lost(r, await this.lossReason(r));
    const executor = await this.records.executor(r.executorId);
    if (!executor) throw await this.lost(r, 'executor exited');
    return { record: r, agent: new SessionAgent(this.agents.get(executor), r.sandboxId) };
  }

  /**
   * Resumes a paused or hibernated session for an NFS call through the gateway (autoResume):
   * the record after. No principal: the export's secret or a handle's tag is the credential,
   * checked by the gateway. 409 SessionPaused when the session was made with autoResume false.
   */
  async resumeForNfs(r: SessionRecord): Promise<SessionRecord> {
    if (r.state !== 'paused' && r.state !== 'hibernated') return r;
    if (r.autoResume === false || !this.lifecycle) throw new SessionPausedError(r.id);
    return this.lifecycle.resumeFor(r);
  }

  /** Why a session's sandbox record is gone: its executor with it, or the sandbox alone. */
  private async lossReason(r: SessionRecord): Promise<string> {
    return (await this.records.executorIds(r.template)).includes(r.executorId) ? 'sandbox gone' : 'executor exited';
  }

  /**
   * Marks running sessions whose sandbox record is gone as lost (their executor was dropped by
   * a replica that died before marking them, or on another replica). Run by the session reaper,
   * at start-up (before serving) and when a stop takes the executors down (`reason` then says so).
   */
  async markOrphans(sessions: SessionRecord[], now = Date.now(), reason?: string): Promise<string[]> {
    // A hibernated session has no sandbox on purpose.
    const running = sessions.filter((r) => r.state !== 'lost' && r.state !== 'hibernated');
    const alive = await this.records.existing(running.map((r) => r.sandboxId));
    const marked: string[] = [];
    for (const r of running) {
      if (alive.has(r.sandboxId)) continue;
      // Re-read: a session created or ended since the list was taken is not an orphan.
      const fresh = await this.store.get(r.id);
      if (!fresh || fresh.state === 'lost' || fresh.state === 'hibernated' || fresh.sandboxId !== r.sandboxId || (await this.records.existing([fresh.sandboxId])).size > 0) continue;
      if (await this.store.markLost(fresh, reason ?? (await this.lossReason(fresh)), now)) {
        marked.push(r.id);
        await this.release(fresh.tenant ?? DEFAULT_TENANT, fresh.id);
      }
    }
    return marked;
  }

  /** Sessions on an executor that was just dropped: lost, with the reason. */
  private async executorLost(loss: ExecutorLoss): Promise<void> {
    const gone = new Set(loss.sandboxIds);
    for (const r of await this.store.all()) {
      if (r.state === 'lost' || r.state === 'hibernated' || r.executorId !== loss.executorId || !gone.has(r.sandboxId)) continue;
      await this.lost(r, loss.reason);
    }
  }

  /** Marks a session lost (forgetting its sandbox record, if any is left) and returns the error to answer with. */
  private async lost(r: SessionRecord, reason: string): Promise<SessionLostError> {
    if (await this.store.markLost(r, reason, Date.now())) {
      log('info', 'session lost', { sessionId: r.id, sandboxId: r.sandboxId, executorId: r.executorId, reason });
      await this.release(r.tenant ?? DEFAULT_TENANT, r.id);
      await this.scheduler.forget(r.template, r.sandboxId);
    }
    return new SessionLostError(r.id, reason);
  }

  /**
   * Runs a handler in the session's runner. The code's hash is its identity: the same code
   * is loaded once and keeps its module state across calls; other code is refused (409).
   */
  async execute(id: string, input: ExecuteInput, who: Principal): Promise<ExecuteResult> {
    const { record: r } = await this.open(id, who);
    const language = input.language ?? languageOfRunner(r.runner) ?? 'nodejs';
    if (languageOfRunner(r.runner) !== language) throw new ValidationError(`session "${id}" runs ${r.runner} (template ${r.template}); it cannot execute ${language}`);
    const timeoutMs = input.timeoutMs ?? 60_000;
    const event = eventText(input.event ?? null);
    const executor = await this.records.executor(r.executorId);
    if (!executor) throw await this.lost(r, 'executor exited');
    const template = this.templates.get(r.template);
    const fn = inlineFunction({ scope: 's', language, code: input.code, env: r.env, memoryMB: template.resources.memoryMB, name: `session-${r.id}` });
    const res = await this.agents
      .get(executor)
      .invoke(invokeRequest(r.sandboxId, randomUUID(), fn, event, timeoutMs, fn.files, r.tenant ?? DEFAULT_TENANT), timeoutMs + 10_000)
      .catch((err: unknown) => {
        // What these mean for a session: it keeps one handler module, and runs one call at a time.
        if (err instanceof SandboxHasOtherFunctionError) throw new SessionCodeConflictError(id);
        if (err instanceof SandboxBusyError) throw new SessionBusyError(id);
        throw err;
      });
    if (!res.sandboxAlive) await this.end(r, 'sandbox died during execute');
    return { ...outcomeOf(res), logs: res.logs, durationMs: res.durationMs, sessionEnded: !res.sandboxAlive };
  }

  /**
   * The session no longer counts against its tenant's quotas (ended, lost, or never made). A
   * release that fails is logged; the quota's reconcile finds the session gone and drops it.
   */
  private async release(tenant: string, id: string): Promise<void> {
    await this.opts.quotas?.releaseSession(tenant, id).catch((err: unknown) => log('warn', 'could not release a session from its quota', { sessionId: id, tenant, error: String(err) }));
  }

  /** The session's record if `who` may reach it; another tenant's is as missing as an unknown id. */
  async record(id: string, who: Principal): Promise<SessionRecord> {
    const r = await this.store.get(id);
    if (!r || !canReach(who, r.tenant)) throw new SessionNotFoundError(id);
    return r;
  }
}
