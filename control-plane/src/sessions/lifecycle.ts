import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Agent, AgentPool } from '../agent/client.js';
import { SessionAgent } from '../agent/session-client.js';
import { KilnError } from '../errors.js';
import { log } from '../log.js';
import type { SandboxRecords } from '../scheduler/records.js';
import type { Scheduler } from '../scheduler/scheduler.js';
import type { BlobStore } from '../storage/blobs.js';
import type { Keys } from '../store/keys.js';
import type { Principal } from '../tenancy/principal.js';
import type { TemplateRegistry } from '../templates/registry.js';
import { SessionLostError, SessionNotFoundError, SessionTransitionBusyError } from './errors.js';
import { RoomMaker } from './make-room.js';
import { exportNameOf, unbindSessionExport } from './nfs.js';
import type { SessionRecord } from './records.js';
import { view, type SessionLifecycleHooks, type SessionService, type SessionView } from './service.js';
import { checkTar } from './tar-guard.js';
import { downloadWorkspace, uploadWorkspace } from './workspace-archive.js';

/** As in service.ts: the sandbox lease outlives the session a little, so the reaper acts first. */
const LEASE_MARGIN_MS = 60_000;
const LEASE_WAIT_MS = 30_000;
/** How long a transition may hold a session (a 1 GB workspace's tar under load fits). */
const TRANSITION_LOCK_MS = 600_000;
/** How long a call waits for another's transition of the same session before 409. */
const TRANSITION_WAIT_MS = 120_000;

export interface LifecycleOptions {
  /** A session paused this long is hibernated (KILN_SESSION_HIBERNATE_AFTER_MS); 0: never. */
  hibernateAfterMs: number;
  /** A session paused this long is ended, hibernated or not (KILN_SESSION_PAUSED_RETENTION_MS). */
  pausedRetentionMs: number;
}

export type ResumeType = 'thawed' | 'restored';

/** What pause and resume answer: the session, and what the step did. */
export interface TransitionResult {
  session: SessionView;
  /** Set by resume: how the session came back; absent when it was running already. */
  resumeType?: ResumeType;
  /** How long the step took in the control plane, in ms (0 when there was nothing to do). */
  tookMs: number;
}

export interface SessionUsage {
  paused: boolean;
  hibernated: boolean;
  /** CPU time of every process in the sandbox since it was made, in µs. */
  cpuUsageUs: number;
  /** Memory its cgroup holds now (tmpfs and page cache included), in bytes. */
  memoryBytes: number;
  processes: number;
}

/** The workspace could not be written to or read from the blob store. */
export class HibernationMissingError extends KilnError {
  constructor(sessionId: string) {
    super('HibernationMissing', 500, `session "${sessionId}" was hibernated but its workspace archive is missing from the blob store; delete the session`, { sessionId });
  }
}

/**
 * Pause, resume and hibernation of sessions.
 *
 * - Pause freezes the sandbox's processes (executor Sandboxes.Pause: the cgroup freezer). They
 *   keep memory, open files and terminals; the sandbox lease is held for the whole pause.
 * - Resume thaws them (`thawed`), or for a hibernated session leases a new sandbox of the same
 *   template and unpacks the saved /workspace into it (`restored`; processes are gone). Paused
 *   time is added to the expiry: it does not count against `timeoutMs`.
 * - Hibernate writes /workspace to the blob store as a tar (made inside the sandbox as its user,
 *   with the sandbox thawed for the length of the tar) and frees the sandbox.
 *
 * One transition per session at a time: a Redis lock (`sessionTransition`) that every step
 * takes, so a pause racing an auto-resume ends in one state or the other, never half.
 */
export class SessionLifecycle implements SessionLifecycleHooks {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly sessions: SessionService,
    private readonly scheduler: Scheduler,
    private readonly records: Pick<SandboxRecords, 'executor' | 'extend'>,
    private readonly agents: AgentPool,
    private readonly templates: TemplateRegistry,
    readonly blobs: BlobStore,
    readonly opts: LifecycleOptions,
  ) {
    sessions.useLifecycle(this);
  }

  private readonly room = new RoomMaker(
    () => this.sessions.store.all(),
    (id) => this.hibernate(id),
  );

  /** Hibernates the longest-paused session of a full template (make-room.ts). */
  makeRoom(template: string): Promise<boolean> {
    return this.room.makeRoom(template);
  }

  async pause(id: string, who: Principal): Promise<TransitionResult> {
    await this.sessions.record(id, who);
    return this.transition(id, () => this.pauseLocked(id));
  }

  async resume(id: string, who: Principal): Promise<TransitionResult> {
    await this.sessions.record(id, who);
    return this.transition(id, () => this.resumeLocked(id));
  }

  async hibernate(id: string, who?: Principal): Promise<TransitionResult> {
    if (who) await this.sessions.record(id, who);
    return this.transition(id, () => this.hibernateLocked(id));
  }

  /** The reaper's idle auto-pause: as `pause`, for a session it already holds. */
  autoPause(r: SessionRecord): Promise<TransitionResult> {
    return this.transition(r.id, () => this.pauseLocked(r.id));
  }

  /**
   * What the session's sandbox has used (its cgroup: CPU time, memory, processes), read without
   * resuming it: how a client sees that a paused session holds memory but uses no CPU.
   */
  async usage(id: string, who: Principal): Promise<SessionUsage> {
    const r = await this.sessions.record(id, who);
    if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
    if (r.state === 'hibernated') return { paused: true, hibernated: true, cpuUsageUs: 0, memoryBytes: 0, processes: 0 };
    const u = await (await this.agentOf(r)).sandboxUsage(r.sandboxId);
    return { paused: u.paused, hibernated: false, cpuUsageUs: u.cpuUsageUs ?? 0, memoryBytes: u.memoryBytes ?? 0, processes: u.processes };
  }

  async resumeFor(r: SessionRecord): Promise<SessionRecord> {
    await this.transition(r.id, () => this.resumeLocked(r.id));
    return this.fresh(r.id);
  }

  async ended(r: SessionRecord): Promise<void> {
    if (r.hibernatedTo) await this.blobs.delete(r.hibernatedTo);
  }

  /**
   * A tar of the session's /workspace, taken without changing its state as the client sees it:
   * a running session is archived as it runs, a paused one is thawed for the tar and frozen
   * again, a hibernated one's saved archive is read. For snapshots and forks.
   */
  async workspaceTar(id: string): Promise<{ record: SessionRecord; tar: Buffer }> {
    return this.transition(id, async () => {
      const r = await this.fresh(id);
      if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
      if (r.state === 'hibernated') {
        const tar = await this.blobs.get(r.hibernatedTo ?? '');
        if (!tar) throw new HibernationMissingError(id);
        return { record: r, tar };
      }
      const agent = await this.agentOf(r);
      if (r.state === 'paused') await agent.resumeSandbox(r.sandboxId);
      try {
        return { record: r, tar: await downloadWorkspace(new SessionAgent(agent, r.sandboxId), this.maxArchiveBytes(r)) };
      } finally {
        if (r.state === 'paused') await agent.pauseSandbox(r.sandboxId);
      }
    });
  }

  private async pauseLocked(id: string): Promise<TransitionResult> {
    const r = await this.fresh(id);
    if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
    if (r.state === 'paused' || r.state === 'hibernated') return { session: await this.viewOf(id), tookMs: 0 };
    const t0 = performance.now();
    const agent = await this.agentOf(r);
    await agent.pauseSandbox(r.sandboxId);
    const now = Date.now();
    // The lease must outlast the pause: until hibernation (or the end of the retention), plus
    // the session's remaining lifetime, which resuming adds back.
    const holdMs = (this.opts.hibernateAfterMs || this.opts.pausedRetentionMs) + Math.max(0, r.expiresAt - now);
    await this.records.extend(r.sandboxId, r.owner, now + holdMs + LEASE_MARGIN_MS);
    const next = await this.sessions.store.update(id, (cur) => (cur.state === 'lost' || cur.sandboxId !== r.sandboxId ? undefined : { ...cur, state: 'paused', pausedAt: now }));
    if (!next) throw new SessionNotFoundError(id);
    log('debug', 'session paused', { sessionId: id, sandboxId: r.sandboxId });
    return { session: await this.viewOf(id), tookMs: performance.now() - t0 };
  }

  private async resumeLocked(id: string): Promise<TransitionResult> {
    const r = await this.fresh(id);
    if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
    if (r.state !== 'paused' && r.state !== 'hibernated') return { session: await this.viewOf(id), tookMs: 0 };
    const t0 = performance.now();
    const type = r.state === 'paused' ? await this.thaw(r) : await this.restore(r);
    log('debug', 'session resumed', { sessionId: id, resumeType: type });
    return { session: await this.viewOf(id), resumeType: type, tookMs: performance.now() - t0 };
  }

  private async thaw(r: SessionRecord): Promise<ResumeType> {
    await (await this.agentOf(r)).resumeSandbox(r.sandboxId);
    const now = Date.now();
    const pausedFor = Math.max(0, now - (r.pausedAt ?? now));
    const next = await this.sessions.store.update(r.id, (cur) =>
      cur.state !== 'paused' ? undefined : { ...withoutPause(cur), state: 'running', expiresAt: cur.expiresAt + pausedFor, lastActivityAt: now, lastResumeType: 'thawed' },
    );
    if (!next) throw new SessionNotFoundError(r.id);
    await this.records.extend(next.sandboxId, next.owner, next.expiresAt + LEASE_MARGIN_MS);
    return 'thawed';
  }

  private async restore(r: SessionRecord): Promise<ResumeType> {
    const tar = await this.blobs.get(r.hibernatedTo ?? '');
    if (!tar) throw new HibernationMissingError(r.id);
    checkTar(tar);
    const template = this.templates.get(r.template);
    const now = Date.now();
    const pausedFor = Math.max(0, now - (r.pausedAt ?? now));
    const leaseMs = Math.max(1000, r.expiresAt + pausedFor - now) + LEASE_MARGIN_MS;
    const makeRoom = (t: string): Promise<boolean> => this.makeRoom(t);
    // A session with volumes gets them bound at its new sandbox's boot, as at its create.
    const lease = r.volumeMounts?.length ? await this.scheduler.acquireFresh(template, r.runner, r.volumeMounts, LEASE_WAIT_MS, leaseMs, makeRoom) : await this.scheduler.acquire(template, r.runner, 'session', LEASE_WAIT_MS, leaseMs, [], makeRoom);
    let next: SessionRecord | undefined;
    try {
      await uploadWorkspace(new SessionAgent(this.agents.get(lease.executor), lease.sandboxId), tar);
      await this.sessions.fillVolumes(r, lease);
      const nfs = await this.sessions.bindNfs(r, lease);
      next = await this.sessions.store.update(r.id, (cur) => {
        if (cur.state !== 'hibernated') return undefined;
        const rest = withoutPause(cur);
        delete rest.nfs;
        return {
          ...rest,
          ...(nfs ? { nfs } : {}),
          state: 'running',
          sandboxId: lease.sandboxId,
          executorId: lease.executor.id,
          owner: lease.owner,
          expiresAt: cur.expiresAt + pausedFor,
          lastActivityAt: now,
          lastResumeType: 'restored',
        };
      });
      if (!next) throw new SessionNotFoundError(r.id);
    } catch (err) {
      await this.scheduler.destroy(lease);
      throw err;
    }
    // Rewritten whole so the NFS gateway's tag index names the new export.
    if (next.nfs?.tag) await this.sessions.store.put(next);
    await this.blobs.delete(r.hibernatedTo ?? '').catch((err: unknown) => log('warn', 'could not delete a restored session\'s hibernation archive', { sessionId: r.id, error: String(err) }));
    return 'restored';
  }

  private async hibernateLocked(id: string): Promise<TransitionResult> {
    const r = await this.fresh(id);
    if (r.state === 'lost') throw new SessionLostError(id, r.lostReason ?? 'sandbox gone');
    if (r.state === 'hibernated') return { session: await this.viewOf(id), tookMs: 0 };
    const t0 = performance.now();
    const agent = await this.agentOf(r);
    // tar runs inside the sandbox, which must run for it.
    if (r.state === 'paused') await agent.resumeSandbox(r.sandboxId);
    const key = `hibernation/${r.id}`;
    try {
      // Its read-write synced volumes are stored first (volumes/synced.ts): the restore fills them again.
      await this.sessions.syncVolumes({ ...r, state: 'running' }, true);
      const tar = await downloadWorkspace(new SessionAgent(agent, r.sandboxId), this.maxArchiveBytes(r));
      await this.blobs.put(key, tar);
    } catch (err) {
      if (r.state === 'paused') await agent.pauseSandbox(r.sandboxId).catch((e: unknown) => log('warn', 'could not pause a session again after its hibernation failed', { sessionId: id, error: String(e) }));
      throw err;
    }
    const now = Date.now();
    const next = await this.sessions.store.update(id, (cur) => (cur.state === 'lost' || cur.sandboxId !== r.sandboxId ? undefined : { ...cur, state: 'hibernated', pausedAt: cur.pausedAt ?? now, hibernatedTo: key }));
    if (!next) {
      await this.blobs.delete(key);
      throw new SessionNotFoundError(id);
    }
    // The record says hibernated before the sandbox goes, so nobody takes the session for lost.
    if (r.nfs) await unbindSessionExport(agent, exportNameOf(r.id, r.nfs)).catch((err: unknown) => log('debug', 'could not unbind a hibernated session\'s export', { sessionId: id, error: String(err) }));
    await this.scheduler.destroy({ template: r.template, sandboxId: r.sandboxId, executor: agent.executor });
    log('debug', 'session hibernated', { sessionId: id, bytes: (await this.blobs.get(key))?.length });
    return { session: await this.viewOf(id), tookMs: performance.now() - t0 };
  }

  /** Largest /workspace tar Kiln keeps: the template's disk size, with room for tar's headers. */
  private maxArchiveBytes(r: SessionRecord): number {
    const diskMB = this.templates.has(r.template) ? this.templates.get(r.template).resources.diskMB : 1024;
    return diskMB * 1024 * 1024 * 2 + 16 * 1024 * 1024;
  }

  private async agentOf(r: SessionRecord): Promise<Agent> {
    const executor = await this.records.executor(r.executorId);
    if (!executor) throw new SessionLostError(r.id, 'executor exited');
    return this.agents.get(executor);
  }

  private async fresh(id: string): Promise<SessionRecord> {
    const r = await this.sessions.store.get(id);
    if (!r) throw new SessionNotFoundError(id);
    return r;
  }

  private async viewOf(id: string): Promise<SessionView> {
    return view(await this.fresh(id));
  }

  /** Runs `step` holding the session's transition lock, waiting for another holder first. */
  private async transition<T>(id: string, step: () => Promise<T>): Promise<T> {
    const key = this.keys.sessionTransition(id);
    const token = randomUUID();
    const until = Date.now() + TRANSITION_WAIT_MS;
    for (let wait = 5; (await this.redis.set(key, token, 'PX', TRANSITION_LOCK_MS, 'NX')) !== 'OK'; wait = Math.min(wait * 2, 100)) {
      if (Date.now() > until) throw new SessionTransitionBusyError(id);
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      return await step();
    } finally {
      if ((await this.redis.get(key)) === token) await this.redis.del(key);
    }
  }
}

/** A copy of the record without the fields of a pause. */
function withoutPause(r: SessionRecord): SessionRecord {
  const rest = { ...r };
  delete rest.pausedAt;
  delete rest.hibernatedTo;
  return rest;
}
