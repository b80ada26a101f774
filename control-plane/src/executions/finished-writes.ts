import type { ChainableCommander, Redis } from 'ioredis';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import { log } from '../log.js';

/** Appends what one owner writes about a finished execution (its keys, its commands) to a transaction. */
export type FinishedWriter = (tx: ChainableCommander, job: InvocationJob, record: ExecutionRecord) => void;
/** Appends a settled job's releases: from its tenant's executions quota and its function's reserved concurrency (tenancy/quotas.ts). */
export type ReleaseWriter = (tx: ChainableCommander, job: InvocationJob) => void;

/**
 * The Redis writes of every finished execution, off the caller's path (the record is delivered
 * first): its history entry, its function's figures, its template's start latency, and its
 * release from the tenant's executions quota (and its function's reserved concurrency). Each owner still spells its own keys; this only
 * carries their commands. Everything appended in one turn of the event loop goes out as one
 * MULTI on the next (setImmediate), so an execution costs one round trip instead of four, and
 * under load the executions that finish together share it. Measured (issue 27): three MULTIs and
 * a ZREM, 29.9 commands per hot invoke on the wire, became one MULTI.
 *
 * A lost transaction (Redis gone) is logged: the records themselves are BullMQ's, and a quota
 * release lost here is found by the quota's reconcile (tenancy/quotas.ts), as before.
 */
export class FinishedWrites {
  private tx: ChainableCommander | undefined;
  private ids: string[] = [];

  constructor(
    private readonly redis: Redis,
    private readonly writers: FinishedWriter[],
    private readonly release: ReleaseWriter,
  ) {}

  /** A finished execution's record: every writer's commands. */
  record(job: InvocationJob, record: ExecutionRecord): void {
    const tx = this.batch(job.id);
    for (const write of this.writers) write(tx, job, record);
  }

  /** A job that ran its last attempt here stops counting against its tenant's executions quota (and its function's reserved concurrency). */
  settled(job: InvocationJob): void {
    this.release(this.batch(job.id), job);
  }

  private batch(id: string): ChainableCommander {
    this.ids.push(id);
    if (this.tx) return this.tx;
    const tx = (this.tx = this.redis.multi());
    // flush() logs its own failures: it never rejects.
    setImmediate(() => void this.flush());
    return tx;
  }

  /** Sends what this turn appended; also called at shutdown, before the connection closes. */
  flush(): Promise<void> {
    const tx = this.tx;
    const ids = this.ids;
    this.tx = undefined;
    this.ids = [];
    if (!tx) return Promise.resolve();
    return tx.exec().then(
      (replies) => {
        const failed = replies?.find(([err]) => err);
        if (failed) log('warn', 'a write of finished executions failed', { ids: [...new Set(ids)].slice(0, 10), error: String(failed[0]) });
      },
      (err: unknown) => log('warn', 'could not write finished executions (history, figures, quota release)', { ids: [...new Set(ids)].slice(0, 10), error: String(err) }),
    );
  }
}
