import { DEFAULT_TENANT } from '../tenancy/principal.js';
import { KilnError, unavailableOr } from '../errors.js';
import { log } from '../log.js';
import { RetryAttempt, type Attempt } from '../queue/queues.js';
import type { ReplyRouter } from '../queue/replies.js';
import type { ExecutionRecord, InvocationJob, LambdaError } from './contract.js';
import type { Dispatcher } from './dispatch.js';
import type { FinishedWrites } from '../executions/finished-writes.js';

/** Receives an async function invocation that failed its last attempt, with its record (error and logs). */
export type DeadLetterSink = (job: InvocationJob, record: ExecutionRecord, attempts: number) => Promise<void>;

/**
 * Receives an async function invocation that settled (its last attempt, a success, or an event too
 * old to run) for its DestinationConfig (functions/destinations.ts); `attempts` is how many ran.
 */
export type DestinationSink = (job: InvocationJob, record: ExecutionRecord, condition: 'Success' | 'RetriesExhausted' | 'EventAgeExceeded', attempts: number) => Promise<void>;

/** Hears about every finished attempt and every platform error (metrics). */
export interface ExecutionObserver {
  record(record: ExecutionRecord): void;
  error(code: string): void;
}

/**
 * What happens to a job after each attempt: the policy that the queue (transport only) leaves
 * to this job handler.
 *
 * - **Synchronous: at most once.** A sync job runs only on its first start and only while its
 *   caller waits. A job that was started before (its control plane died mid-run, or Redis lost
 *   the write that finished it, and BullMQ put it back) ends as `Kiln.Interrupted`; one whose
 *   caller is gone (its replica died or restarted) ends as `Kiln.Abandoned`. Either way it is
 *   not run again: as on AWS, the caller retries, not the service. A platform failure is the
 *   caller's record at once.
 * - **Asynchronous: at least once.** A retryable platform failure (ExecutorLost, NoCapacity)
 *   is retried with backoff; for function invocations (`retryHandlerErrors`) a handler error or
 *   timeout is too, and the last failure is dead-lettered with its error and logs. A job cut
 *   off mid-run is run again. Submitting with an idempotency key makes retried submissions one
 *   job (submit.ts).
 * - Every attempt's record is counted (metrics) and the final one is stored (the job's result)
 *   and delivered to a waiting caller.
 */
export class OutcomePolicy {
  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly replies: ReplyRouter,
    private readonly observer: ExecutionObserver,
    private readonly deadLetters: DeadLetterSink,
    /** Every final record's writes: history, figures, start latency (executions/finished-writes.ts). */
    private readonly history?: Pick<FinishedWrites, 'record'>,
    private readonly destinations?: DestinationSink,
  ) {}

  /** Hands a settled async function job to its destination, if its config names one; never fails the job. */
  private async destine(job: InvocationJob, record: ExecutionRecord, condition: Parameters<DestinationSink>[2], attempts: number): Promise<void> {
    if (!this.destinations || !job.destinations || job.sync || !job.retryHandlerErrors) return;
    await this.destinations(job, record, condition, attempts).catch((err: unknown) => log('error', 'could not send to a destination', { id: job.id, error: String(err) }));
  }

  /** The queue's job handler. */
  readonly handle = async (attempt: Attempt): Promise<ExecutionRecord> => {
    const { job } = attempt;
    if (job.sync) {
      const skipped = await this.skipSync(attempt);
      if (skipped) return this.finish(job, skipped);
    }
    const last = attempt.attempt >= attempt.maxAttempts;
    const aged = this.tooOld(job);
    if (aged) {
      // Not run again: given up as its last attempt would be (event invoke config, Lambda's MaximumEventAgeInSeconds).
      await this.deadLetters(job, aged, attempt.attempt - 1).catch((err: unknown) => log('error', 'could not record a dead letter', { id: job.id, error: String(err) }));
      await this.destine(job, aged, 'EventAgeExceeded', attempt.attempt - 1);
      return this.finish(job, aged);
    }
    let record: ExecutionRecord;
    try {
      // A streaming caller's chunks go ahead of the record, on the same way (queue/replies.ts).
      record = await this.dispatcher.run(job, Date.now(), job.stream ? (chunk) => this.replies.deliverChunk(chunk, job.replyTo) : undefined);
    } catch (thrown) {
      // A Redis outage mid-attempt (a lease, a release) is ServiceUnavailable: retryable.
      const err = unavailableOr(thrown);
      const kiln = err instanceof KilnError ? err : undefined;
      if (!kiln) log('error', 'invocation failed inside Kiln', { id: job.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      if (!job.sync && kiln?.retryable && !last) {
        this.observer.error(kiln.code);
        throw new RetryAttempt(`${kiln.code}: ${kiln.message}`);
      }
      record = platformFailure(job, kiln ? kiln.code : 'InternalError', err instanceof Error ? err.message : String(err));
    }
    if (!job.sync && job.retryHandlerErrors && record.status !== 'succeeded') {
      if (!last) {
        this.observer.record(record);
        const error = record.error ?? { errorType: record.status, errorMessage: `invocation ${record.status}` };
        throw new RetryAttempt(`${error.errorType}: ${error.errorMessage}`);
      }
      // A dead letter that cannot be written is logged; the job's own record still keeps the failure.
      await this.deadLetters(job, record, attempt.attempt).catch((err: unknown) => log('error', 'could not record a dead letter', { id: job.id, error: String(err) }));
    }
    await this.destine(job, record, record.status === 'succeeded' ? 'Success' : 'RetriesExhausted', attempt.attempt);
    return this.finish(job, record);
  };

  /** The record of an async function event older than its maximum age (not run), else undefined. */
  private tooOld(job: InvocationJob): ExecutionRecord | undefined {
    if (job.sync || !job.retryHandlerErrors || job.maxEventAgeMs === undefined) return undefined;
    const age = Date.now() - job.submittedAt;
    if (age <= job.maxEventAgeMs) return undefined;
    return platformFailure(job, 'EventAgeExceeded', `the event was ${Math.round(age / 1000)} s old, past its MaximumEventAgeInSeconds (${job.maxEventAgeMs / 1000}), and was not run again`);
  }

  /** Why a sync job must not run, as its record; undefined when it may run. */
  private async skipSync(attempt: Attempt): Promise<ExecutionRecord | undefined> {
    const { job } = attempt;
    if (attempt.starts > attempt.attempt) {
      return platformFailure(job, 'Interrupted', 'the synchronous invocation was cut off (its control plane stopped, or Redis lost its result) and is not run again; retry it if it did not take effect');
    }
    if (!(await this.replies.callerWaiting(job.id, job.replyTo))) {
      return platformFailure(job, 'Abandoned', 'the caller of this synchronous invocation went away (its control plane stopped) before it started; it was not run');
    }
    return undefined;
  }

  private finish(job: InvocationJob, record: ExecutionRecord): ExecutionRecord {
    this.observer.record(record);
    this.replies.deliver(record, job.replyTo);
    this.history?.record(job, record);
    return record;
  }
}

/** The record of an attempt that failed inside Kiln: `Kiln.<code>`, no logs. */
export function platformFailure(job: InvocationJob, code: string, message: string): ExecutionRecord {
  const error: LambdaError = { errorType: `Kiln.${code}`, errorMessage: message, stackTrace: [] };
  return {
    id: job.id,
    status: 'failed',
    error,
    logs: '',
    durationMs: 0,
    template: job.template,
    tenant: job.tenant ?? DEFAULT_TENANT,
    createdAt: new Date(job.submittedAt).toISOString(),
    finishedAt: new Date().toISOString(),
  };
}
