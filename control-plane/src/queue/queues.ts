import { PRIORITY_LIMIT, Queue, Worker, UnrecoverableError, type Job, type RedisOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import { log, logging, withLogContext, withoutLogContext } from '../log.js';
import { DEFAULT_TENANT } from '../tenancy/principal.js';
import type { TemplateRegistry } from '../templates/registry.js';
import type { Template } from '../templates/template.js';

/** One attempt of a job, as the transport hands it to the job handler. */
export interface Attempt {
  job: InvocationJob;
  /** 1 for the first attempt. */
  attempt: number;
  maxAttempts: number;
  /**
   * How many times a worker has taken this job, this time included. More than `attempt` means
   * an earlier run was cut off without an outcome (its control plane died, or Redis lost the
   * write that would have finished it) and BullMQ put the job back.
   */
  starts: number;
}

/** Runs one attempt and returns the job's record; throws RetryAttempt to have it tried again later. */
export type JobHandler = (attempt: Attempt) => Promise<ExecutionRecord>;

/**
 * Told when a job has run its last attempt here (a record, a final failure), so whoever counts
 * jobs in flight (tenancy/quotas.ts) stops counting it. Jobs that end without a worker seeing
 * it (failed as stalled twice) are found by `finished`.
 */
export type SettledListener = (job: InvocationJob) => void;

/** Thrown by a job handler: this attempt failed and the job is to be tried again after a backoff. */
export class RetryAttempt extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'RetryAttempt';
  }
}

/** A job as stored, read in one atomic step (state and data together). */
export interface JobSnapshot {
  state: 'queued' | 'running' | 'completed' | 'failed';
  job: InvocationJob;
  record?: ExecutionRecord;
  failedReason?: string;
  finishedOn?: number;
}

/**
 * Sandboxes one BullMQ Worker serves. A Worker fetches jobs one Redis round trip at a time
 * once its queue has run dry, so a burst of jobs reaching a large idle template waits in line;
 * several Workers fetch side by side. Each Worker also costs two connections and its own
 * wake-ups, so a template no bigger than this keeps one. Measured (profile-hot, 2 cores, 32
 * clients, same run): 48 sandboxes in 1 Worker 35–40% of the floor, in 2 37–44%, in 3 41–46%,
 * in 4 40–44%; 16 sandboxes in 1 Worker 48–54%, in 3 37–43%.
 */
const SLOTS_PER_WORKER = 16;
/**
 * At most this many Workers per template on each replica, whatever its size: each holds Redis
 * connections, and a template of 100,000,000 sandboxes once meant millions of them.
 */
export const MAX_WORKERS_PER_TEMPLATE = 8;

/** The concurrency of each of a template's Workers: as even as can be, adding up to `capacity`. */
export function workerShares(capacity: number): number[] {
  const n = Math.min(MAX_WORKERS_PER_TEMPLATE, Math.max(1, Math.ceil(capacity / SLOTS_PER_WORKER)));
  return Array.from({ length: n }, (_, i) => Math.floor(capacity / n) + (i < capacity % n ? 1 : 0));
}

/**
 * BullMQ transport: one queue per template and its workers, nothing about what a job means.
 * The job handler (invocation/outcome.ts) is passed to `startWorkers`; it decides retries,
 * dead letters, records and metrics.
 */
export class ExecutionQueues {
  private readonly queues = new Map<string, Queue<InvocationJob, ExecutionRecord>>();
  private readonly workers = new Map<string, Array<Worker<InvocationJob, ExecutionRecord>>>();
  /** Workers of a template whose capacity shrank, closing while their jobs finish. */
  private readonly closing = new Set<Promise<void>>();
  private handler: JobHandler | undefined;
  private settled: SettledListener = () => undefined;

  constructor(
    private readonly connection: RedisOptions,
    private readonly prefix: string,
    private readonly templates: TemplateRegistry,
    private readonly opts: { resultTtlSeconds: number },
  ) {}

  queue(template: string): Queue<InvocationJob, ExecutionRecord> {
    let q = this.queues.get(template);
    if (!q) {
      // Auto-pipelining merges the adds of concurrent requests made in one tick into one write
      // (fewer syscalls per job under load). Only here: this connection never blocks, unlike
      // the Worker's, and A/B runs showed no gain from it on the Worker's connections.
      // Made by whichever request first needs it and shared by all: outside that request's log context.
      q = withoutLogContext(() => new Queue<InvocationJob, ExecutionRecord>(template, { connection: { ...this.connection, enableAutoPipelining: true }, prefix: this.prefix }));
      // Surfaced through /health; the queue reconnects by itself.
      q.on('error', (err) => log('warn', 'queue connection error', { template, error: err.message }));
      this.queues.set(template, q);
    }
    return q;
  }

  /** Starts each template's workers, whose concurrency follows the template's capacity. */
  async startWorkers(handler: JobHandler, settled?: SettledListener): Promise<void> {
    this.handler = handler;
    if (settled) this.settled = settled;
    await Promise.all(this.templates.all().map((t) => this.startWorker(t)));
  }

  /**
   * Starts a template's workers (a template created at runtime), or follows its new capacity:
   * one Worker per SLOTS_PER_WORKER sandboxes, their concurrencies adding up to the template's
   * capacity. Workers no longer needed close in the background, letting their jobs finish.
   */
  async startWorker(template: Template): Promise<void> {
    const handler = this.handler;
    if (!handler) return;
    const shares = workerShares(template.pool.maxSandboxes);
    const workers = this.workers.get(template.name) ?? [];
    this.workers.set(template.name, workers);
    for (const extra of workers.splice(shares.length)) this.closeInBackground(extra);
    shares.forEach((concurrency, i) => {
      const existing = workers[i];
      if (existing) existing.concurrency = concurrency;
      else workers.push(this.newWorker(template.name, handler, concurrency));
    });
    await Promise.all(workers.map((w) => w.waitUntilReady()));
  }

  /** One attempt in its job's log context: every line logged on the job's behalf names its tenant (log.ts). */
  private async inJobContext(handler: JobHandler, job: Job<InvocationJob, ExecutionRecord>): Promise<ExecutionRecord> {
    return withLogContext({ tenant: job.data.tenant ?? DEFAULT_TENANT }, async () => {
      const record = await this.process(handler, job);
      if (logging('debug')) log('debug', 'job finished', { id: job.id, template: job.data.template, status: record.status, ...(record.error ? { errorType: record.error.errorType } : {}) });
      return record;
    });
  }

  private newWorker(template: string, handler: JobHandler, concurrency: number): Worker<InvocationJob, ExecutionRecord> {
    // A template made over the API starts its workers inside that request: not in its log context.
    const worker = withoutLogContext(() => new Worker<InvocationJob, ExecutionRecord>(template, (job) => this.inJobContext(handler, job), {
      connection: this.connection,
      prefix: this.prefix,
      concurrency,
      // Jobs whose worker died (its control plane was killed) lose their lock after
      // lockDuration; the stalled-job check of any live worker, every stalledInterval, puts
      // them back in the queue once, then fails them. Locks are renewed every lockDuration / 2.
      // The job handler sees such a second start in `Attempt.starts` (sync jobs are not re-run).
      maxStalledCount: 1,
      stalledInterval: 5_000,
      lockDuration: 10_000,
      // How long a Worker waits before it tries again a write that failed (finishing a job,
      // fetching the next) after Redis went away. BullMQ's 15 s default left jobs that finished
      // during a short outage unrecorded long after Redis was back, and their locks lapsed.
      runRetryDelay: 1_000,
    }));
    worker.on('error', (err) => log('warn', 'worker error', { template, error: err.message }));
    return worker;
  }

  /** Hands one attempt to the handler; a RetryAttempt is retried with backoff, anything else is final. */
  private async process(handler: JobHandler, job: Job<InvocationJob, ExecutionRecord>): Promise<ExecutionRecord> {
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    try {
      const record = await handler({ job: job.data, attempt, maxAttempts, starts: Math.max(job.attemptsStarted, attempt) });
      this.settled(job.data);
      return record;
    } catch (err) {
      // The last attempt's RetryAttempt fails the job for good, as does anything else.
      if (!(err instanceof RetryAttempt) || attempt >= maxAttempts) this.settled(job.data);
      if (err instanceof RetryAttempt) throw err;
      // The handler turns every outcome into a record; an error here is a bug in it, and BullMQ
      // keeps its message as the failed job's reason (GET /executions shows it).
      log('error', 'job handler failed', { id: job.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      throw new UnrecoverableError(err instanceof Error ? err.message : String(err));
    }
  }

  private closeInBackground(worker: Worker<InvocationJob, ExecutionRecord>): void {
    const closing = worker
      .close()
      .catch((err: unknown) => log('warn', 'could not close a worker', { template: worker.name, error: String(err) }))
      .finally(() => this.closing.delete(closing));
    this.closing.add(closing);
  }

  /** Stops a deleted template's workers, letting running jobs finish. */
  async stopWorker(name: string): Promise<void> {
    const workers = this.workers.get(name) ?? [];
    this.workers.delete(name);
    await Promise.all(workers.map((w) => w.close()));
  }

  /**
   * Adds a job under its id; resolves with the id it is stored under. `priority` (async jobs,
   * fair share: invocation/submit.ts) is honoured as it is consumed: every Worker of the
   * template, on every replica, takes its next job with BullMQ's one moveToActive script, which
   * pops the wait list (jobs without a priority) first, then the prioritized set lowest first
   * (equal priorities in the order they were added), one job per free slot with no prefetch;
   * a retried job comes back from the delayed set with its priority. The lease cache only lends
   * a parked sandbox to whichever job came next; it never picks jobs. A job whose id is already
   * stored (an idempotency key seen before, within the result TTL) is not added again: BullMQ
   * keeps the first, and its id comes back.
   */
  async add(job: InvocationJob, attempts: number, priority?: number): Promise<string> {
    const added = await this.queue(job.template).add('execution', job, {
      jobId: job.id,
      attempts,
      // BullMQ serves its wait list (jobs without a priority) first, then prioritized jobs, lowest first.
      ...(priority !== undefined ? { priority: Math.min(PRIORITY_LIMIT, Math.max(1, Math.floor(priority))) } : {}),
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: this.opts.resultTtlSeconds },
      removeOnFail: { age: this.opts.resultTtlSeconds },
    });
    return added.id ?? job.id;
  }

  /**
   * Jobs waiting in a template's queue (not running, not delayed for a retry): the wait list and
   * the prioritized set (async jobs carry a priority, see invocation/submit.ts).
   */
  waitingCount(template: string): Promise<number> {
    return this.queue(template).getJobCountByTypes('waiting', 'prioritized');
  }

  /** Of these job ids, the ones a template's queue no longer holds as queued or running (gone, completed or failed). */
  async finished(template: string, ids: string[]): Promise<string[]> {
    if (!this.templates.has(template)) return ids;
    const q = this.queue(template);
    const client = (await q.client) as unknown as Redis;
    const out: string[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const tx = client.pipeline();
      for (const id of chunk) tx.exists(q.toKey(id)).zscore(q.toKey('completed'), id).zscore(q.toKey('failed'), id);
      const replies = (await tx.exec()) ?? [];
      chunk.forEach((id, j) => {
        const [exists, completed, failed] = [0, 1, 2].map((k) => replies[j * 3 + k]?.[1]);
        if (exists === 0 || completed !== null || failed !== null) out.push(id);
      });
    }
    return out;
  }

  /**
   * A job and its state, read atomically (MULTI), from whichever template's queue holds it.
   * Reading the job, then its state, as two steps once answered 404 for a job that completed
   * in between: the snapshot had no result yet and the state said it was done.
   */
  async snapshot(id: string): Promise<JobSnapshot | undefined> {
    const found = await Promise.all(this.templates.names().map((t) => this.snapshotIn(t, id)));
    return found.find((s) => s !== undefined);
  }

  /**
   * The stored records of finished jobs, in the order asked (undefined where the job is gone or
   * has no record), one pipelined read per template.
   */
  async records(jobs: Array<{ template: string; id: string }>): Promise<Array<ExecutionRecord | undefined>> {
    const out: Array<ExecutionRecord | undefined> = new Array<ExecutionRecord | undefined>(jobs.length).fill(undefined);
    const byTemplate = new Map<string, number[]>();
    jobs.forEach((j, i) => {
      if (this.templates.has(j.template)) byTemplate.set(j.template, [...(byTemplate.get(j.template) ?? []), i]);
    });
    await Promise.all(
      [...byTemplate].map(async ([template, indexes]) => {
        const q = this.queue(template);
        const client = (await q.client) as unknown as Redis;
        const tx = client.pipeline();
        for (const i of indexes) tx.hget(q.toKey((jobs[i] as { id: string }).id), 'returnvalue');
        const replies = (await tx.exec()) ?? [];
        indexes.forEach((i, k) => {
          const value = replies[k]?.[1];
          if (typeof value === 'string') out[i] = JSON.parse(value) as ExecutionRecord;
        });
      }),
    );
    return out;
  }

  private async snapshotIn(template: string, id: string): Promise<JobSnapshot | undefined> {
    const q = this.queue(template);
    // BullMQ's own connection (an ioredis client), so the read needs no connection of its own.
    const client = (await q.client) as unknown as Redis;
    const replies = await client.multi().hgetall(q.toKey(id)).zscore(q.toKey('completed'), id).zscore(q.toKey('failed'), id).lpos(q.toKey('active'), id).exec();
    if (!replies) return undefined;
    for (const [err] of replies) if (err) throw err;
    const [hash, completed, failed, active] = replies.map(([, v]: [Error | null, unknown]) => v) as [Record<string, string>, string | null, string | null, number | null];
    if (!hash.data) return undefined;
    const job = JSON.parse(hash.data) as InvocationJob;
    const finishedOn = hash.finishedOn ? Number(hash.finishedOn) : undefined;
    if (completed !== null) return { state: 'completed', job, ...(hash.returnvalue ? { record: JSON.parse(hash.returnvalue) as ExecutionRecord } : {}), ...(finishedOn ? { finishedOn } : {}) };
    if (failed !== null) return { state: 'failed', job, ...(hash.failedReason ? { failedReason: hash.failedReason } : {}), ...(finishedOn ? { finishedOn } : {}) };
    return { state: active !== null ? 'running' : 'queued', job };
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.values()].flat().map((w) => w.close()));
    await Promise.all(this.closing);
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
