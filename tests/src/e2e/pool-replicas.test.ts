import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { threadPolicies } from '@kiln/control-plane/cpu-policy';
import { removeDataDir, startKilnProcess, testDirs, type KilnProcess } from '../support/kiln.js';

/**
 * Two real control-plane processes on one Redis (same prefix and data dir, as two replicas on
 * one host) lease from the same pools under concurrent load. Each handler marks its sandbox's
 * /tmp as busy while it runs: a sandbox leased twice at once would see the mark of the other.
 */
const HANDLER = (variant: number): string => `
const fs = require('fs');
exports.handler = async (e) => {
  let overlap = false;
  try { fs.writeFileSync('/tmp/busy', e.n, { flag: 'wx' }); } catch { overlap = true; }
  let sandbox;
  try { sandbox = fs.readFileSync('/tmp/id', 'utf8'); } catch { sandbox = Math.random().toString(36).slice(2); fs.writeFileSync('/tmp/id', sandbox); }
  const start = Date.now();
  await new Promise((r) => setTimeout(r, 15));
  if (!overlap) fs.unlinkSync('/tmp/busy');
  return { overlap, sandbox, start, end: Date.now(), variant: ${variant} };
};`;

const prefix = `t${randomBytes(4).toString('hex')}`;
const dirs = testDirs({ nodejs: { pool: { minIdle: 2, maxSandboxes: 6, sandboxesPerExecutor: 6 } }, python: null, shell: null, provided: null });
const env = {
  KILN_REDIS_URL: `unix://${inject('redisSocket')}`,
  KILN_REDIS_PREFIX: prefix,
  KILN_DATA_DIR: dirs.dataDir,
  KILN_TEMPLATES_DIR: dirs.templatesDir,
};
const redis = new Redis({ path: inject('redisSocket') });
const replicas: KilnProcess[] = [];

beforeAll(async () => {
  replicas.push(await startKilnProcess(env));
  replicas.push(await startKilnProcess(env));
});
afterAll(async () => {
  for (const r of replicas) await r.kill('SIGTERM');
  for (const f of readdirSync(join(dirs.dataDir, 'executors')).filter((n) => n.endsWith('.json'))) {
    try {
      process.kill((JSON.parse(readFileSync(join(dirs.dataDir, 'executors', f), 'utf8')) as { pid: number }).pid, 'SIGKILL');
    } catch {
      // already stopped by its control plane
    }
  }
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await removeDataDir(dirs.dataDir);
});

describe('two control planes sharing one Redis', () => {
  it("run as SCHED_BATCH (KILN_CPU_POLICY's default), and so do the executors they start", () => {
    for (const r of replicas) expect(new Set(threadPolicies(r.child.pid))).toEqual(new Set(['batch']));
    const executors = readdirSync(join(dirs.dataDir, 'executors')).filter((n) => n.endsWith('.json'));
    expect(executors.length).toBeGreaterThan(0);
    for (const f of executors) {
      const { pid } = JSON.parse(readFileSync(join(dirs.dataDir, 'executors', f), 'utf8')) as { pid: number };
      expect(new Set(threadPolicies(pid))).toEqual(new Set(['batch']));
    }
  });

  it('never lease the same sandbox twice under concurrent load', { timeout: 120_000 }, async () => {
    type Result = { status: string; startType: string; result: { overlap: boolean; sandbox: string; start: number; end: number }; error?: unknown };
    const results: Result[] = [];
    await Promise.all(
      Array.from({ length: 24 }, async (_, client) => {
        const url = replicas[client % 2]?.url;
        for (let i = 0; i < 8; i++) {
          const res = await fetch(`${url}/api/v1/executions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ code: HANDLER((client + i) % 4), language: 'nodejs', event: { n: `${client}-${i}` } }),
          });
          results.push((await res.json()) as Result);
        }
      }),
    );
    expect(results.filter((r) => r.status !== 'succeeded').map((r) => r.error ?? r)).toEqual([]);
    expect(results.filter((r) => r.result.overlap)).toEqual([]);
    // The same from the handlers' own clocks: per sandbox, no two invocations overlap in time.
    const bySandbox = new Map<string, Array<{ start: number; end: number }>>();
    for (const r of results) bySandbox.set(r.result.sandbox, [...(bySandbox.get(r.result.sandbox) ?? []), r.result]);
    for (const spans of bySandbox.values()) {
      spans.sort((a, b) => a.start - b.start);
      for (let i = 1; i < spans.length; i++) expect(spans[i]?.start).toBeGreaterThanOrEqual(spans[i - 1]?.end ?? 0);
    }
    const types = new Set(results.map((r) => r.startType));
    expect(types.has('hot')).toBe(true);
    // Nothing is left leased once the load is over, and the template's limit held.
    const ids = await redis.smembers(`${prefix}:sbxs:nodejs`);
    expect(ids.length).toBeLessThanOrEqual(6);
    // (The keeper may still be booting a warm sandbox for minIdle: that settles within a round.)
    let states: Array<string | null> = [];
    for (let i = 0; i < 50; i++) {
      const now = await redis.smembers(`${prefix}:sbxs:nodejs`);
      states = await Promise.all(now.map((id) => redis.hget(`${prefix}:sbx:${id}`, 'state')));
      if (states.every((s) => s === 'idle')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(states.filter((s) => s !== 'idle')).toEqual([]);
  });
});
