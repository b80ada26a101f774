import type { Redis } from 'ioredis';
import type { Keys } from '../store/keys.js';

/** A sandbox's Redis record as the scheduler writes it (see scripts.ts). */
export interface SandboxRecord {
  id: string;
  executor: string;
  template: string;
  runner: string;
  state: 'booting' | 'idle' | 'busy' | 'reaping';
  /** Function key of the loaded instance; empty for a warm (pre-booted) sandbox. */
  fn: string;
  createdAt: number;
  lastUsed: number;
  leaseUntil: number;
}

/**
 * Every sandbox record of a template, read in one pipeline. A snapshot: records change under
 * it, so whoever acts on one re-checks it inside a Lua script.
 */
export async function readSandboxes(redis: Redis, keys: Keys, template: string): Promise<SandboxRecord[]> {
  const ids = await redis.smembers(keys.sandboxes(template));
  if (ids.length === 0) return [];
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hgetall(keys.sandbox(id));
  const out: SandboxRecord[] = [];
  for (const [err, raw] of (await pipe.exec()) ?? []) {
    const r = raw as Record<string, string> | null;
    if (err || !r?.id) continue;
    out.push({
      id: r.id,
      executor: r.executor ?? '',
      template: r.template ?? template,
      runner: r.runner ?? '',
      state: (r.state ?? 'booting') as SandboxRecord['state'],
      fn: r.fn ?? '',
      createdAt: Number(r.createdAt ?? 0),
      lastUsed: Number(r.lastUsed ?? 0),
      leaseUntil: Number(r.leaseUntil ?? 0),
    });
  }
  return out;
}

/** The idle list a record sits on while idle: its function's hot list, or its runner's warm list. */
export function idleList(keys: Keys, r: SandboxRecord): string {
  return r.fn ? keys.hot(r.template, r.fn) : keys.warm(r.template, r.runner);
}
