import { Queue, Worker, UnrecoverableError, type Job, type RedisOptions } from 'bullmq';
import { KilnError, TooManyRequestsError } from '../errors.js';
import type { ExecutionRunner } from '../executions/runner.js';
import type { ExecutionJob, ExecutionRecord, LambdaError } from '../executions/types.js';
import { log } from '../log.js';
import type { TemplateRegistry } from '../templates/registry.js';
import type { Template } from '../templates/template.js';
import type { ReplyRouter } from './replies.js';

/** Receives an async job that failed its last attempt (functions keep these as dead letters). */
export type DeadLetterSink = (job: ExecutionJob, error: LambdaError, attempts: number) => Promise<void>;

/** Hears about every finished execution and every platform error (metrics). */
export interface ExecutionObserver {
  record(record: ExecutionRecord): void;
  error(code: string): void;
}

/** Async jobs are tried this many times when a retryable platform error (ExecutorLost) hits them. */
const ASYNC_ATTEMPTS = 3;
/** How long a queue's waiting count is reused by the throttle before it is read again. */
const WAITING_CACHE_MS = 100;

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
 * One BullMQ queue per template and its workers. A synchronous caller waits for the job's
 * record through the ReplyRouter, whichever replica's worker runs it.
 */
export class ExecutionQueues {
  private readonly queues = new Map<string, Queue<ExecutionJob, ExecutionRecord>>();
  private readonly workers = new Map<string, Array<Worker<ExecutionJob, ExecutionRecord>>>();
  /** Workers of a template whose capacity shrank, closing while their jobs finish. */
  private readonly closing = new Set<Promise<void>>();
  private readonly waiting = new Map<string, { at: number; count: Promise<number> }>();
  private runner: ExecutionRunner | undefined;
  /** Set by server.ts to feed metrics. */
  observer: ExecutionObserver | undefined;
  private deadLetterSink: DeadLetterSink | undefined;

  constructor(
    private readonly connection: RedisOptions,
    private readonly prefix: string,
    private readonly templates: TemplateRegistry,
    private readonly opts: { resultTtlSeconds: number },
    private readonly replies: ReplyRouter,
  ) {}

  queue(template: string): Queue<ExecutionJob, ExecutionRecord> {
    let q = this.queues.get(template);
    if (!q) {
      // Auto-pipelining merges the adds of concurrent requests made in one tick into one write
      // (fewer syscalls per job under load). Only here: this connection never blocks, unlike
      // the Worker's, and A/B runs showed no gain from it on the Worker's connections.
      q = new Queue<ExecutionJob, ExecutionRecord>(template, { connection: { ...this.connection, enableAutoPipelining: true }, prefix: this.prefix });
      // Surfaced through /health; the queue reconnects by itself.
      q.on('error', (err) => log('warn', 'queue connection error', { template, error: err.message }));
      this.queues.set(template, q);
    }
    return q;
  }

  /** Starts each template's workers, whose concurrency follows the template's capacity. */
  async startWorkers(runner: ExecutionRunner): Promise<void> {
    this.runner = runner;
    await Promise.all(this.templates.all().map((t) => this.startWorker(t)));
  }

  /**
   * Starts a template's workers (a template created at runtime), or follows its new capacity:
   * one Worker per SLOTS_PER_WORKER sandboxes, their concurrencies adding up to the template's
   * capacity. Workers no longer needed close in the background, letting their jobs finish.
   */
  async startWorker(template: Template): Promise<void> {
    const runner = this.runner;
    if (!runner) return;
    const shares = workerShares(template.pool.maxSandboxes);
    const workers = this.workers.get(template.name) ?? [];
    this.workers.set(template.name, workers);
    for (const extra of workers.splice(shares.length)) this.closeInBackground(extra);
    shares.forEach((concurrency, i) => {
      const existing = workers[i];
      if (existing) existing.concurrency = concurrency;
      else workers.push(this.newWorker(template.name, runner, concurrency));
    });
    await Promise.all(workers.map((w) => w.waitUntilReady()));
  }

  private newWorker(template: string, runner: ExecutionRunner, concurrency: number): Worker<ExecutionJob, ExecutionRecord> {
    const worker = new Worker<ExecutionJob, ExecutionRecord>(template, (job) => this.process(runner, job), {
      connection: this.connection,
      prefix: this.prefix,
      concurrency,
      // Jobs whose worker died (its control plane was killed) lose their lock after
      // lockDuration; the stalled-job check of any live worker, every stalledInterval, puts
      // them back in the queue once, then fails them. Locks are renewed every lockDuration / 2.
      maxStalledCount: 1,
      stalledInterval: 5_000,
      lockDuration: 10_000,
    });
    worker.on('error', (err) => log('warn', 'worker error', { template, error: err.message }));
    return worker;
  }

  private closeInBackground(worker: Worker<ExecutionJob, ExecutionRecord>): void {
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
   * 429 when the template's queue already holds more than `queue.maxWaiting` waiting jobs.
   * The count is shared by the requests of one 100 ms window, so a burst costs one Redis read.
   */
  private async throttle(template: Template): Promise<void> {
    const now = Date.now();
    let seen = this.waiting.get(template.name);
    if (!seen || now - seen.at > WAITING_CACHE_MS) {
      seen = { at: now, count: this.queue(template.name).getWaitingCount() };
      this.waiting.set(template.name, seen);
    }
    const count = await seen.count.catch((err: unknown) => {
      this.waiting.delete(template.name);
      throw err;
    });
    if (count > template.queue.maxWaiting) {
      this.observer?.error('TooManyRequests');
      // Roughly the time the backlog takes to drain at one second per job per sandbox, at least 1 s.
      throw new TooManyRequestsError(template.name, Math.max(1, Math.min(60, Math.ceil(count / template.pool.maxSandboxes))));
    }
  }

  private async process(runner: ExecutionRunner, job: Job<ExecutionJob, ExecutionRecord>): Promise<ExecutionRecord> {
    let record: ExecutionRecord;
    try {
      record = await runner.run(job.data, Date.now());
    } catch (err) {
      const kiln = err instanceof KilnError ? err : undefined;
      // A sync failure becomes a record below and is counted from it.
      if (!job.data.sync) this.observer?.error(kiln ? kiln.code : 'InternalError');
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!job.data.sync && kiln?.retryable && !lastAttempt) throw err;
      if (!job.data.sync)
        await this.deadLetter(job, { errorType: kiln ? `Kiln.${kiln.code}` : 'Kiln.InternalError', errorMessage: (err as Error).message, stackTrace: [] });
      if (!job.data.sync) throw kiln?.retryable ? err : new UnrecoverableError((err as Error).message);
      record = {
        id: job.data.id,
        status: 'failed',
        error: { errorType: kiln ? `Kiln.${kiln.code}` : 'Kiln.InternalError', errorMessage: (err as Error).message, stackTrace: [] },
        logs: '',
        durationMs: 0,
        template: job.data.template,
        createdAt: new Date(job.data.submittedAt).toISOString(),
        finishedAt: new Date().toISOString(),
      };
    }
    if (!job.data.sync && job.data.retryHandlerErrors && record.status !== 'succeeded') await this.failAttempt(job, record);
    this.observer?.record(record);
    this.replies.deliver(record, job.data.replyTo);
    return record;
  }

  /** Where async jobs with `retryHandlerErrors` go after their last failed attempt. */
  onDeadLetter(sink: DeadLetterSink): void {
    this.deadLetterSink = sink;
  }

  /** A handler error of an async function invocation fails the attempt; the last one is dead-lettered. */
  private async failAttempt(job: Job<ExecutionJob, ExecutionRecord>, record: ExecutionRecord): Promise<never> {
    const error = record.error ?? { errorType: 'Unknown', errorMessage: `invocation ${record.status}`, stackTrace: [] };
    if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) await this.deadLetter(job, error);
    throw new Error(`${error.errorType}: ${error.errorMessage}`);
  }

  private async deadLetter(job: Job<ExecutionJob, ExecutionRecord>, error: LambdaError): Promise<void> {
    if (!job.data.retryHandlerErrors || !this.deadLetterSink) return;
    // A dead letter that cannot be written is logged; the job itself still fails in BullMQ.
    await this.deadLetterSink(job.data, error, job.attemptsMade + 1).catch((err: unknown) =>
      log('error', 'could not record a dead letter', { id: job.data.id, error: String(err) }),
    );
  }

  /** Adds a job; resolves when it is queued. */
  add(job: ExecutionJob, attempts = job.sync ? 1 : ASYNC_ATTEMPTS): Promise<Job<ExecutionJob, ExecutionRecord>> {
    return this.queue(job.template).add('execution', job, {
      jobId: job.id,
      attempts,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: this.opts.resultTtlSeconds },
      removeOnFail: { age: this.opts.resultTtlSeconds },
    });
  }

  /**
   * Adds a job and waits for its record, at most `waitMs`. If no reply came (the replica that
   * ran it died between finishing and replying), the stored record is the answer.
   */
  async addAndWait(job: ExecutionJob, waitMs: number): Promise<ExecutionRecord | undefined> {
    await this.throttle(this.templates.get(job.template));
    const waiting = this.replies.wait(job.id);
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.add({ ...job, replyTo: this.replies.replicaId });
      const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)));
      const record = await Promise.race([waiting.record, timeout]);
      if (record) return record;
      const stored = await this.get(job.id);
      return stored && stored.status !== 'queued' && stored.status !== 'running' ? stored : undefined;
    } finally {
      clearTimeout(timer);
      waiting.cancel();
    }
  }

  /** The record of an execution in any template's queue, or undefined. */
  async get(id: string): Promise<ExecutionRecord | undefined> {
    const found = await Promise.all(this.templates.names().map((t) => this.queue(t).getJob(id)));
    const job = found.find((j) => j !== undefined);
    if (!job) return undefined;
    const state = await job.getState();
    const base = { id, logs: '', durationMs: 0, template: job.data.template, createdAt: new Date(job.data.submittedAt).toISOString() };
    if (state === 'completed') return job.returnvalue;
    if (state === 'failed')
      return {
        ...base,
        status: 'failed',
        error: { errorType: 'Kiln.Failed', errorMessage: job.failedReason ?? 'failed', stackTrace: [] },
        finishedAt: new Date(job.finishedOn ?? Date.now()).toISOString(),
      };
    if (state === 'active') return { ...base, status: 'running' };
    return { ...base, status: 'queued' };
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.values()].flat().map((w) => w.close()));
    await Promise.all(this.closing);
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
