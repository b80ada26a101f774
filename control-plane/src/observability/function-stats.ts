import type { ChainableCommander, Redis } from 'ioredis';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import type { Keys } from '../store/keys.js';
import { DEFAULT_TENANT } from '../tenancy/principal.js';

/** Invocations kept per function at most: enough for stable percentiles, bounded in memory. */
export const MAX_SAMPLES = 10_000;

/** What `GET /api/v1/functions/{name}/metrics` answers for a window. */
export interface FunctionMetrics {
  function: string;
  windowMs: number;
  invocations: number;
  errors: number;
  /** Errors by status: failed (the handler threw or Kiln failed it) and timeout. */
  byStatus: Record<string, number>;
  byStartType: Record<string, number>;
  /** Latency from submission to result (timings.totalMs); absent when there are no invocations. */
  latencyMs?: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** True when the window holds more invocations than are kept (the figures are of the newest MAX_SAMPLES). */
  sampled: boolean;
}

/** The value at quantile q of sorted numbers (nearest rank). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * Per tenant and function, the recent invocations as a sorted set (finish time → "id status
 * startType totalMs"), trimmed to the history's retention and to MAX_SAMPLES; counts and
 * percentiles are computed when asked, over a window. Deployment-wide (every replica writes the
 * same set), unlike the per-replica Prometheus histogram. Written off the caller's path with the
 * history, in one transaction (executions/finished-writes.ts), whose failure is logged.
 */
export class FunctionStats {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly retentionSeconds: number,
  ) {}

  /** Appends a finished function invocation to `tx` (ad-hoc executions are no function's). */
  append(tx: ChainableCommander, job: InvocationJob, record: ExecutionRecord): void {
    if (job.function.code === undefined) return;
    const at = record.finishedAt ? Date.parse(record.finishedAt) : Date.now();
    const ms = record.timings?.totalMs ?? record.durationMs;
    const key = this.keys.functionStats(job.tenant ?? DEFAULT_TENANT, job.function.name);
    tx.zadd(key, at, `${record.id} ${record.status} ${record.startType ?? '-'} ${Math.round(ms * 1000) / 1000}`)
      .zremrangebyscore(key, '-inf', at - this.retentionSeconds * 1000)
      .zremrangebyrank(key, 0, -MAX_SAMPLES - 1)
      .expire(key, this.retentionSeconds);
  }

  /** The function's figures over the last `windowMs` (at most the retention). */
  async metrics(tenant: string, fn: string, windowMs: number): Promise<FunctionMetrics> {
    const window = Math.min(windowMs, this.retentionSeconds * 1000);
    const members = await this.redis.zrangebyscore(this.keys.functionStats(tenant, fn), Date.now() - window, '+inf');
    const byStatus: Record<string, number> = {};
    const byStartType: Record<string, number> = {};
    const latencies: number[] = [];
    for (const m of members) {
      const [, status = 'unknown', startType = '-', ms] = m.split(' ');
      byStatus[status] = (byStatus[status] ?? 0) + 1;
      if (startType !== '-') byStartType[startType] = (byStartType[startType] ?? 0) + 1;
      const n = Number(ms);
      if (Number.isFinite(n)) latencies.push(n);
    }
    latencies.sort((a, b) => a - b);
    const errors = members.length - (byStatus.succeeded ?? 0);
    const out: FunctionMetrics = { function: fn, windowMs: window, invocations: members.length, errors, byStatus, byStartType, sampled: members.length >= MAX_SAMPLES };
    if (latencies.length > 0) {
      const sum = latencies.reduce((a, b) => a + b, 0);
      out.latencyMs = { p50: quantile(latencies, 0.5), p90: quantile(latencies, 0.9), p99: quantile(latencies, 0.99), max: latencies[latencies.length - 1] as number, mean: Math.round((sum / latencies.length) * 1000) / 1000 };
    }
    return out;
  }
}
