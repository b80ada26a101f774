import type { ChainableCommander, Redis } from 'ioredis';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import type { Keys } from '../store/keys.js';

/** Upper bounds of the start-latency buckets in ms (the last bucket is everything above). */
export const START_BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000] as const;
const START_TYPES = ['hot', 'warm', 'cold'] as const;
type StartType = (typeof START_TYPES)[number];

/** One start type's figures: counts per bucket (`le` in ms, Infinity last) and their sum. */
export interface StartHistogram {
  count: number;
  sumMs: number;
  buckets: Array<{ leMs: number | null; count: number }>;
}

/**
 * How long a template's sandboxes took to start serving an invocation, per start type: the time
 * from the job being picked to the handler running (timings.scheduleMs + initMs: finding or
 * booting a sandbox, then loading the function). One Redis hash per template, deployment-wide
 * (HINCRBY from every replica), never expiring: counts since the template was first used, like
 * a Prometheus counter, but readable through the API by tenants who cannot read /metrics.
 */
export class StartLatency {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Appends a finished execution's start to `tx` (executions/finished-writes.ts). */
  append(tx: ChainableCommander, job: InvocationJob, record: ExecutionRecord): void {
    const type = record.startType;
    if (!type || !record.timings) return;
    const ms = record.timings.scheduleMs + record.timings.initMs;
    let bucket = START_BUCKETS_MS.findIndex((le) => ms <= le);
    if (bucket === -1) bucket = START_BUCKETS_MS.length;
    const key = this.keys.startLatency(job.template);
    tx.hincrby(key, `${type}:${bucket}`, 1).hincrby(key, `${type}:n`, 1).hincrbyfloat(key, `${type}:sum`, ms);
  }

  async histograms(template: string): Promise<Record<StartType, StartHistogram>> {
    const raw = await this.redis.hgetall(this.keys.startLatency(template));
    const out = {} as Record<StartType, StartHistogram>;
    for (const type of START_TYPES) {
      const buckets = [...START_BUCKETS_MS, null].map((leMs, i) => ({ leMs, count: Number(raw[`${type}:${i}`] ?? 0) }));
      out[type] = { count: Number(raw[`${type}:n`] ?? 0), sumMs: Math.round(Number(raw[`${type}:sum`] ?? 0) * 1000) / 1000, buckets };
    }
    return out;
  }
}
