import { createHash } from 'node:crypto';
import { KilnError, NotFoundError, TooManyRequestsError, ValidationError } from '../errors.js';
import type { ExecutionQueues } from '../queue/queues.js';
import type { ReplyRouter } from '../queue/replies.js';
import type { TemplateRegistry } from '../templates/registry.js';
import type { ExecutionRecord, InvocationJob } from './contract.js';
import type { ExecutionObserver } from './outcome.js';
import type { ChunkListener } from './stream.js';
import { canReach, DEFAULT_TENANT, type Principal } from '../tenancy/principal.js';
import { QuotaExceededError, type Quotas } from '../tenancy/quotas.js';

/** Async jobs are tried this many times when a retryable platform error (ExecutorLost) hits them. */
export const ASYNC_ATTEMPTS = 3;
/** How long a queue's waiting count is reused by the throttle before it is read again. */
const WAITING_CACHE_MS = 100;
/** How long a sync caller waits beyond the handler's own timeout (queueing, a cold start). */
const SYNC_WAIT_MARGIN_MS = 60_000;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,256}$/;

/**
 * A job to submit, and how: `scope` names what an idempotency key is unique within (a function,
 * or ad-hoc executions), always within the job's tenant (see `submit`).
 */
export interface Submission {
  job: InvocationJob;
  /** Attempts of an async job (sync jobs get one). */
  attempts?: number;
  idempotency?: { scope: string; key: string };
  /** A sync `stream` job's caller: gets the body's chunks as they come, before the record (invocation/stream.ts). */
  onChunk?: ChunkListener;
}

/**
 * The job id an idempotency key stands for: the same key within the same scope is the same
 * job, so a client that retries a submission (its connection dropped, a 503) gets the first one
 * back instead of a second run. Shaped as a UUID, like every other execution id.
 */
export function idempotentId(scope: string, key: string): string {
  const h = createHash('sha256').update(`${scope}\0${key}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h.charAt(16), 16) & 0x3) | 0x8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The id an async submission with an idempotency key gets (its scope within its tenant), as `submit` assigns it. */
export function submissionId(tenant: string, idempotency: { scope: string; key: string }): string {
  return idempotentId(`tenant:${tenant}:${idempotency.scope}`, idempotency.key);
}

/** Checks a caller's idempotency key (header value); undefined when none was given. */
export function idempotencyKey(raw: string | undefined, header: string): string | undefined {
  if (raw === undefined) return undefined;
  if (!IDEMPOTENCY_KEY.test(raw)) throw new ValidationError(`${header} must be 1-256 printable ASCII characters without spaces`, { field: header });
  return raw;
}

/**
 * Puts jobs on the queue for every surface: the same throttle for sync and async work, the
 * idempotency key of async work, and the wait of a sync caller for its record.
 */
export class Submitter {
  private readonly waiting = new Map<string, { at: number; count: Promise<number> }>();

  constructor(
    private readonly queues: ExecutionQueues,
    private readonly replies: ReplyRouter,
    private readonly templates: TemplateRegistry,
    private readonly observer: Pick<ExecutionObserver, 'error'>,
    private readonly quotas: Pick<Quotas, 'admitExecution' | 'releaseExecution'>,
  ) {}

  /**
   * Queues a job. Async: resolves with its id once queued (the first job's id when its
   * idempotency key was seen before). Sync: waits for its record; 504 WaitTimeout if none came.
   * Idempotency keys are scoped to the job's tenant here, for every surface at once: another
   * tenant's same key is another job, so it neither gets this tenant's id nor blocks its key.
   */
  async submit(s: Submission): Promise<{ id: string; record?: ExecutionRecord }> {
    await this.throttle(s.job.template);
    const tenant = s.job.tenant ?? DEFAULT_TENANT;
    if (!s.job.sync) {
      const job = s.idempotency ? { ...s.job, id: submissionId(tenant, s.idempotency) } : s.job;
      // A resubmission of a job still in flight is not counted twice; one of a job that already
      // finished (BullMQ keeps the first, adds nothing) counts until the quota's reconcile finds
      // that job finished, which it does when the tenant reaches its limit.
      const inFlight = await this.admit(tenant, job);
      // Fair share: a tenant's async job waits behind the jobs of tenants with fewer in flight.
      // BullMQ serves lower priorities first and equal ones in order, so a tenant that queued
      // 10,000 jobs gets priorities up to 10,001 while one with a handful gets 1 to 5: the
      // newcomer's jobs start next, the flood's own order is kept.
      return { id: await this.queued(job, () => this.queues.add(job, s.attempts ?? ASYNC_ATTEMPTS, 1 + inFlight)) };
    }
    // Sync jobs carry no priority: BullMQ serves its wait list before any prioritized job, so a
    // caller holding a connection open (with a deadline) is not queued behind async backlogs,
    // as before fair share, and the hot path costs no sorted-set insert. Their number is bounded
    // by the callers' open connections and by the same executions quota.
    await this.admit(tenant, s.job);
    const record = await this.addAndWait(s.job, s.job.timeoutMs + SYNC_WAIT_MARGIN_MS, s.onChunk);
    if (!record) throw new KilnError('WaitTimeout', 504, `invocation ${s.job.id} did not finish in time; poll GET /api/v1/executions/${s.job.id}`, { id: s.job.id });
    return { id: s.job.id, record };
  }

  /** Counts the job against its tenant's executions quota (QuotaExceeded, counted like the throttle's 429, when over). */
  private async admit(tenant: string, job: InvocationJob): Promise<number> {
    try {
      return await this.quotas.admitExecution(tenant, job.template, job.id);
    } catch (err) {
      if (err instanceof QuotaExceededError) this.observer.error(err.code);
      throw err;
    }
  }

  /** Adds a job admitted by the quota; if it cannot be added, it stops counting at once. */
  private async queued<T>(job: InvocationJob, add: () => Promise<T>): Promise<T> {
    try {
      return await add();
    } catch (err) {
      // The add's own error is the answer; a release that fails too (Redis gone) is left to the
      // quota's reconcile, which drops members whose job does not exist (tenancy/quotas.ts).
      await this.quotas.releaseExecution(job.tenant ?? DEFAULT_TENANT, job.template, job.id).catch(() => undefined);
      throw err;
    }
  }

  /**
   * 429 when the template's queue already holds more than `queue.maxWaiting` waiting jobs, for
   * sync and async work alike. The count is shared by the requests of one 100 ms window, so a
   * burst costs one Redis read.
   */
  private async throttle(name: string): Promise<void> {
    const template = this.templates.get(name);
    const now = Date.now();
    let seen = this.waiting.get(name);
    if (!seen || now - seen.at > WAITING_CACHE_MS) {
      seen = { at: now, count: this.queues.waitingCount(name) };
      this.waiting.set(name, seen);
    }
    const count = await seen.count.catch((err: unknown) => {
      this.waiting.delete(name);
      throw err;
    });
    if (count > template.queue.maxWaiting) {
      this.observer.error('TooManyRequests');
      // Roughly the time the backlog takes to drain at one second per job per sandbox, at least 1 s.
      throw new TooManyRequestsError(name, Math.max(1, Math.min(60, Math.ceil(count / template.pool.maxSandboxes))));
    }
  }

  /**
   * Adds a sync job and waits for its record, at most `waitMs`. If no reply came (the replica
   * that ran it died between finishing and replying), the stored record is the answer.
   */
  private async addAndWait(job: InvocationJob, waitMs: number, onChunk?: ChunkListener): Promise<ExecutionRecord | undefined> {
    const waiting = this.replies.wait(job.id, onChunk);
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.queued(job, () => this.queues.add({ ...job, replyTo: this.replies.replicaId }, 1));
      const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)));
      const record = await Promise.race([waiting.record, timeout]);
      if (record) return record;
      const stored = await this.find(job.id);
      return stored && stored.status !== 'queued' && stored.status !== 'running' ? stored : undefined;
    } finally {
      clearTimeout(timer);
      waiting.cancel();
    }
  }

  /**
   * The record of an invocation, from one atomic read of its job; 404 when there is none, or
   * when `who` may not reach the job's tenant (the same answer: ids of other tenants' jobs are
   * not revealed).
   */
  async get(id: string, who: Principal): Promise<ExecutionRecord> {
    const record = await this.find(id, who);
    if (!record) throw new NotFoundError('Execution', id);
    return record;
  }

  private async find(id: string, who?: Principal): Promise<ExecutionRecord | undefined> {
    const s = await this.queues.snapshot(id);
    if (!s) return undefined;
    if (who && !canReach(who, s.job.tenant)) return undefined;
    if (s.state === 'completed' && s.record) return s.record;
    const base = { id, logs: '', durationMs: 0, template: s.job.template, tenant: s.job.tenant ?? DEFAULT_TENANT, createdAt: new Date(s.job.submittedAt).toISOString() };
    // Failed in BullMQ's terms: stalled twice (an async job whose control planes kept dying) or
    // a fault in the job handler; every other failure ends as a completed job with a record.
    if (s.state === 'failed' || s.state === 'completed')
      return { ...base, status: 'failed', error: { errorType: 'Kiln.Failed', errorMessage: s.failedReason ?? 'failed', stackTrace: [] }, finishedAt: new Date(s.finishedOn ?? Date.now()).toISOString() };
    return { ...base, status: s.state };
  }
}
