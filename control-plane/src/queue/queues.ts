import { Queue, Worker, UnrecoverableError, type Job, type RedisOptions } from 'bullmq';
import { KilnError } from '../errors.js';
import type { ExecutionRunner } from '../executions/runner.js';
import type { ExecutionJob, ExecutionRecord } from '../executions/types.js';
import { log } from '../log.js';
import type { TemplateRegistry } from '../templates/registry.js';
import type { ReplyRouter } from './replies.js';

/**
 * One BullMQ queue per template and its worker. A synchronous caller waits for the job's
 * record through the ReplyRouter, whichever replica's worker runs it.
 */
export class ExecutionQueues {
  private readonly queues = new Map<string, Queue<ExecutionJob, ExecutionRecord>>();
  private readonly workers: Worker<ExecutionJob, ExecutionRecord>[] = [];

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
      q = new Queue<ExecutionJob, ExecutionRecord>(template, { connection: this.connection, prefix: this.prefix });
      // Surfaced through /health; the queue reconnects by itself.
      q.on('error', (err) => log('warn', 'queue connection error', { template, error: err.message }));
      this.queues.set(template, q);
    }
    return q;
  }

  /** Starts a worker per template whose concurrency follows the template's capacity. */
  async startWorkers(runner: ExecutionRunner): Promise<void> {
    for (const template of this.templates.all()) {
      const worker = new Worker<ExecutionJob, ExecutionRecord>(template.name, (job) => this.process(runner, job), {
        connection: this.connection,
        prefix: this.prefix,
        concurrency: template.pool.maxSandboxes,
        // Jobs whose worker died are re-run once, then failed (BullMQ's stalled-job check).
        maxStalledCount: 1,
        stalledInterval: 15_000,
      });
      worker.on('error', (err) => log('warn', 'worker error', { template: template.name, error: err.message }));
      this.workers.push(worker);
    }
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  private async process(runner: ExecutionRunner, job: Job<ExecutionJob, ExecutionRecord>): Promise<ExecutionRecord> {
    let record: ExecutionRecord;
    try {
      record = await runner.run(job.data, Date.now());
    } catch (err) {
      const kiln = err instanceof KilnError ? err : undefined;
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (!job.data.sync && kiln?.retryable && !lastAttempt) throw err;
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
    this.replies.deliver(record, job.data.replyTo);
    return record;
  }

  /** Adds a job; resolves when it is queued. */
  add(job: ExecutionJob, attempts = 1): Promise<Job<ExecutionJob, ExecutionRecord>> {
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
    if (state === 'failed') return { ...base, status: 'failed', error: { errorType: 'Kiln.Failed', errorMessage: job.failedReason ?? 'failed', stackTrace: [] }, finishedAt: new Date(job.finishedOn ?? Date.now()).toISOString() };
    if (state === 'active') return { ...base, status: 'running' };
    return { ...base, status: 'queued' };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.close()));
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
