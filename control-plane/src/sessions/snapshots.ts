import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SessionAgent } from '../agent/session-client.js';
import type { AgentPool } from '../agent/client.js';
import { KilnError, ValidationError } from '../errors.js';
import { log } from '../log.js';
import type { SandboxRecords } from '../scheduler/records.js';
import type { Keys } from '../store/keys.js';
import { canReach, DEFAULT_TENANT, type Principal } from '../tenancy/principal.js';
import type { SessionLifecycle } from './lifecycle.js';
import type { SessionRecord } from './records.js';
import type { CreateSessionInput, SessionService, SessionView } from './service.js';
import { checkTar } from './tar-guard.js';
import { uploadWorkspace } from './workspace-archive.js';

/** Most sessions one fork call makes: each is a sandbox and counts against the session quotas. */
export const MAX_FORK_COUNT = 10;

/** A saved /workspace: a tar in the blob store and this record in Redis. */
export interface SnapshotRecord {
  id: string;
  tenant: string;
  name: string;
  /** The template of the session it was taken from: the default of sessions made from it. */
  template: string;
  sessionId: string;
  createdAt: number;
  bytes: number;
  blobKey: string;
}

export interface SnapshotView {
  id: string;
  tenant: string;
  name: string;
  template: string;
  sessionId: string;
  createdAt: string;
  bytes: number;
}

export class SnapshotNotFoundError extends KilnError {
  constructor(id: string) {
    super('SnapshotNotFound', 404, `snapshot "${id}" does not exist (it may have been deleted)`, { snapshotId: id });
  }
}

/** As tenancy's QuotaExceededError (429 QuotaExceeded, `data.quota`), for the snapshot count. */
export class SnapshotQuotaError extends KilnError {
  constructor(tenant: string, limit: number) {
    super('QuotaExceeded', 429, `tenant "${tenant}" is at its snapshots quota: ${limit} of ${limit} snapshots; delete one (DELETE /api/v1/snapshots/{id}) or ask an administrator to raise KILN_QUOTA_SNAPSHOTS`, {
      quota: 'snapshots',
      limit,
      used: limit,
      retryAfterSeconds: 60,
    });
  }
}

const view = (s: SnapshotRecord): SnapshotView => ({ id: s.id, tenant: s.tenant, name: s.name, template: s.template, sessionId: s.sessionId, createdAt: new Date(s.createdAt).toISOString(), bytes: s.bytes });

/**
 * Snapshots (named, per tenant, counted against KILN_QUOTA_SNAPSHOTS), sessions made from them,
 * and forks (N new sessions with copies of one session's /workspace). Archives are made and
 * unpacked by tar inside the sandboxes as their user and checked by tar-guard.ts in between;
 * the control plane never touches a workspace path on a host.
 */
export class SnapshotService {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly sessions: SessionService,
    private readonly lifecycle: SessionLifecycle,
    private readonly records: Pick<SandboxRecords, 'executor'>,
    private readonly agents: AgentPool,
    private readonly opts: { maxPerTenant: number },
  ) {}

  async create(sessionId: string, name: string | undefined, who: Principal): Promise<SnapshotView> {
    const id = `snap_${randomUUID().replaceAll('-', '')}`;
    const tenant = (await this.sessions.record(sessionId, who)).tenant ?? DEFAULT_TENANT;
    // Counted before the archive is made, and given back if anything after fails.
    const set = this.keys.tenantSnapshots(tenant);
    const counted = await this.redis.multi().sadd(set, id).scard(set).exec();
    const count = Number(counted?.[1]?.[1] ?? 0);
    if (count > this.opts.maxPerTenant) {
      await this.redis.srem(set, id);
      throw new SnapshotQuotaError(tenant, this.opts.maxPerTenant);
    }
    const blobKey = `snapshots/${id}`;
    try {
      const { record, tar } = await this.lifecycle.workspaceTar(sessionId);
      await this.lifecycle.blobs.put(blobKey, tar);
      const s: SnapshotRecord = { id, tenant, name: name ?? id, template: record.template, sessionId, createdAt: Date.now(), bytes: tar.length, blobKey };
      await this.redis.multi().set(this.keys.snapshot(id), JSON.stringify(s)).sadd(this.keys.snapshots, id).exec();
      return view(s);
    } catch (err) {
      await this.redis.srem(set, id);
      await this.lifecycle.blobs.delete(blobKey).catch((e: unknown) => log('warn', 'could not delete the archive of a failed snapshot', { snapshotId: id, error: String(e) }));
      throw err;
    }
  }

  async list(who: Principal): Promise<SnapshotView[]> {
    const ids = await this.redis.smembers(this.keys.snapshots);
    if (ids.length === 0) return [];
    const raws = await this.redis.mget(ids.map((id) => this.keys.snapshot(id)));
    return raws
      .filter((r): r is string => r !== null)
      .map((r) => JSON.parse(r) as SnapshotRecord)
      .filter((s) => canReach(who, s.tenant))
      .sort((a, b) => a.createdAt - b.createdAt)
      .map(view);
  }

  async get(id: string, who: Principal): Promise<SnapshotView> {
    return view(await this.record(id, who));
  }

  async delete(id: string, who: Principal): Promise<void> {
    const s = await this.record(id, who);
    const done = await this.redis.multi().del(this.keys.snapshot(id)).srem(this.keys.snapshots, id).srem(this.keys.tenantSnapshots(s.tenant), id).exec();
    // Only the caller whose DEL removed the record deletes the archive.
    if (Number(done?.[0]?.[1] ?? 0) === 1) await this.lifecycle.blobs.delete(s.blobKey);
  }

  /** A new session (quotas as any create) whose /workspace is the snapshot's. */
  async createSession(input: CreateSessionInput & { fromSnapshot: string }, who: Principal): Promise<SessionView> {
    const s = await this.record(input.fromSnapshot, who);
    const tar = await this.lifecycle.blobs.get(s.blobKey);
    if (!tar) throw new SnapshotNotFoundError(s.id);
    checkTar(tar);
    const rest: CreateSessionInput & { fromSnapshot?: string } = { ...input };
    delete rest.fromSnapshot;
    return this.sessionWith({ ...rest, template: rest.template ?? s.template }, tar, who);
  }

  /**
   * `count` new sessions of the source's template, each with a copy of its /workspace as it is
   * now (processes are not copied). All or nothing: if one cannot be made, those made are ended.
   */
  async fork(sessionId: string, input: { count: number; timeoutMs?: number; metadata?: Record<string, string> }, who: Principal): Promise<SessionView[]> {
    if (!Number.isInteger(input.count) || input.count < 1 || input.count > MAX_FORK_COUNT) throw new ValidationError(`count must be between 1 and ${MAX_FORK_COUNT}; got ${input.count}`);
    const src = await this.sessions.record(sessionId, who);
    const { record, tar } = await this.lifecycle.workspaceTar(sessionId);
    const base: CreateSessionInput = {
      template: record.template,
      env: src.env,
      metadata: { ...src.metadata, ...input.metadata },
      idleTimeoutMs: src.idleTimeoutMs,
      ...(input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : { timeoutMs: src.timeoutMs }),
      ...(src.autoPause ? { autoPause: true } : {}),
      ...(src.autoResume === false ? { autoResume: false } : {}),
      // A fork mounts the source's volumes as the source does (the same data, not a copy).
      ...(src.volumes?.length ? { volumes: src.volumes } : {}),
    };
    const made = await Promise.allSettled(Array.from({ length: input.count }, () => this.sessionWith(base, tar, who)));
    const failed = made.find((m): m is PromiseRejectedResult => m.status === 'rejected');
    const ok = made.filter((m): m is PromiseFulfilledResult<SessionView> => m.status === 'fulfilled').map((m) => m.value);
    if (failed) {
      for (const s of ok) await this.sessions.delete(s.id, who, 'fork failed').catch((err: unknown) => log('warn', 'could not end a session of a failed fork', { sessionId: s.id, error: String(err) }));
      throw failed.reason;
    }
    return ok;
  }

  private async sessionWith(input: CreateSessionInput, tar: Buffer, who: Principal): Promise<SessionView> {
    const created = await this.sessions.create(input, who);
    try {
      const r = (await this.sessions.store.get(created.id)) as SessionRecord;
      const executor = await this.records.executor(r.executorId);
      if (!executor) throw new KilnError('SessionSandboxLost', 502, `the new session's executor ${r.executorId} is gone`, { sessionId: r.id });
      await uploadWorkspace(new SessionAgent(this.agents.get(executor), r.sandboxId), tar);
    } catch (err) {
      await this.sessions.delete(created.id, who, 'workspace restore failed').catch((e: unknown) => log('warn', 'could not end a session whose workspace restore failed', { sessionId: created.id, error: String(e) }));
      throw err;
    }
    return created;
  }

  private async record(id: string, who: Principal): Promise<SnapshotRecord> {
    const raw = await this.redis.get(this.keys.snapshot(id));
    const s = raw ? (JSON.parse(raw) as SnapshotRecord) : undefined;
    if (!s || !canReach(who, s.tenant)) throw new SnapshotNotFoundError(id);
    return s;
  }
}
