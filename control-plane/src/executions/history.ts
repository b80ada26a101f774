import type { ChainableCommander, Redis } from 'ioredis';
import { ValidationError } from '../errors.js';
import type { ExecutionRecord, InvocationJob } from '../invocation/contract.js';
import type { Keys } from '../store/keys.js';
import { DEFAULT_TENANT } from '../tenancy/principal.js';

/** What the index keeps of a finished execution: enough to filter without reading records. */
export interface HistoryEntry {
  id: string;
  template: string;
  /** The function's name and version, for function invocations. */
  function?: { name: string; version: string };
  status: ExecutionRecord['status'];
  startType?: ExecutionRecord['startType'];
  /** When it finished, ms since the epoch. */
  at: number;
}

export interface HistoryFilter {
  function?: string | undefined;
  template?: string | undefined;
  status?: ExecutionRecord['status'] | undefined;
  startType?: NonNullable<ExecutionRecord['startType']> | undefined;
  /** Finished at or after / before, ms since the epoch. */
  since?: number | undefined;
  until?: number | undefined;
}

/** Index members read per page at most, so a filter that matches little cannot make one request scan a tenant's whole history. */
const SCAN_BUDGET = 2000;
const BATCH = 200;

type Member = { i: string; t: string; f?: string; v?: string; s: ExecutionRecord['status']; st?: ExecutionRecord['startType'] };

/**
 * Every tenant's finished executions, newest first: a sorted set per tenant (finish time →
 * a small JSON member with what filters need), written beside the record BullMQ stores and
 * trimmed to the same retention (KILN_RESULT_TTL_SECONDS), so an entry never outlives its
 * record by more than the moment between two writes. Written off the caller's path (the record
 * is delivered first), in the one transaction of every execution finished in the same turn
 * of the event loop (executions/finished-writes.ts).
 */
export class ExecutionHistory {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly retentionSeconds: number,
  ) {}

  /** Appends a finished execution's entry to `tx` (whose failure its owner logs: the record itself is stored by the queue). */
  append(tx: ChainableCommander, job: InvocationJob, record: ExecutionRecord): void {
    const at = record.finishedAt ? Date.parse(record.finishedAt) : Date.now();
    const fn = job.function.code !== undefined ? { f: job.function.name, v: job.function.version } : {};
    const member: Member = { i: record.id, t: job.template, ...fn, s: record.status, ...(record.startType ? { st: record.startType } : {}) };
    const key = this.keys.executions(job.tenant ?? DEFAULT_TENANT);
    tx.zadd(key, at, JSON.stringify(member))
      .zremrangebyscore(key, '-inf', at - this.retentionSeconds * 1000)
      .expire(key, this.retentionSeconds);
  }

  /**
   * A page of a tenant's history, newest first, filtered. `cursor` continues where the last
   * page ended; a page may hold fewer than `limit` entries (the scan budget ran out) and still
   * have a `next` cursor.
   */
  async list(tenant: string, filter: HistoryFilter, limit: number, cursor?: string): Promise<{ entries: HistoryEntry[]; next?: string }> {
    const key = this.keys.executions(tenant);
    const floor = Math.max(filter.since ?? 0, Date.now() - this.retentionSeconds * 1000);
    // Pages go by rank from the newest. A cursor names the last entry returned: the next page
    // starts right after it, wherever new executions have pushed it (or, once the retention
    // trimmed it away, after the entries no older than it).
    let start: number;
    if (cursor) {
      const [score, member] = decodeCursor(cursor);
      const rank = await this.redis.zrevrank(key, member);
      start = rank === null ? await this.redis.zcount(key, `(${score}`, '+inf') : rank + 1;
    } else {
      start = filter.until === undefined ? 0 : await this.redis.zcount(key, `(${filter.until}`, '+inf');
    }
    const entries: HistoryEntry[] = [];
    let last: [number, string] | undefined;
    for (let scanned = 0; entries.length < limit && scanned < SCAN_BUDGET; ) {
      const page = await this.redis.zrevrange(key, start, start + BATCH - 1, 'WITHSCORES');
      for (let j = 0; j < page.length && entries.length < limit; j += 2) {
        const member = page[j] as string;
        const score = Number(page[j + 1]);
        if (score < floor) return { entries };
        start++;
        scanned++;
        last = [score, member];
        const entry = parseMember(member, score);
        if (entry && matches(entry, filter)) entries.push(entry);
      }
      if (page.length < BATCH * 2 && entries.length < limit) return { entries };
    }
    return { entries, ...(last ? { next: encodeCursor(last) } : {}) };
  }
}

function parseMember(member: string, at: number): HistoryEntry | undefined {
  try {
    const m = JSON.parse(member) as Member;
    return { id: m.i, template: m.t, ...(m.f ? { function: { name: m.f, version: m.v ?? '$LATEST' } } : {}), status: m.s, ...(m.st ? { startType: m.st } : {}), at };
  } catch {
    return undefined;
  }
}

function matches(e: HistoryEntry, f: HistoryFilter): boolean {
  return (
    (f.function === undefined || e.function?.name === f.function) &&
    (f.template === undefined || e.template === f.template) &&
    (f.status === undefined || e.status === f.status) &&
    (f.startType === undefined || e.startType === f.startType)
  );
}

function encodeCursor([score, member]: [number, string]): string {
  return Buffer.from(JSON.stringify([score, member])).toString('base64url');
}

function decodeCursor(cursor: string): [number, string] {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && typeof v[0] === 'number' && Number.isFinite(v[0]) && typeof v[1] === 'string') return [v[0], v[1]];
  } catch {
    // refused below
  }
  throw new ValidationError('cursor is not one this API returned', { field: 'cursor' });
}
