import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { waitFor } from '../support/wait.js';

/**
 * Fair share (invocation/submit.ts): a tenant flooding a saturated template with async jobs must
 * not starve another. Tenant flood queues 300 jobs on a template of two sandboxes, then tenant
 * polite queues 5; each handler reports when it started. Without fair share polite's jobs would
 * start after all of flood's (one FIFO queue); with it they start next, ahead of flood's backlog.
 * The assertion is on order only: every polite job starts before flood's last 100 do.
 */
const FLOOD = 'fair-flood-key-0123456789abcdef';
const POLITE = 'fair-polite-key-0123456789abcdef';
const FLOOD_JOBS = 300;
const POLITE_JOBS = 5;
const TAIL = 100;

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2, maxSandboxes: 2 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `flood:${FLOOD},polite:${POLITE}` },
  });
}, 120_000);
afterAll(async () => {
  await k?.stop();
});

const call = (key: string, method: string, path: string, body?: unknown) => k.call(method, path, body, { authorization: `Bearer ${key}` });
/** Reports the moment it started (the host's clock: sandboxes share it), then holds its sandbox a little. */
const WORK = 'exports.handler = async () => { const startedAt = Date.now(); await new Promise((r) => setTimeout(r, 40)); return { startedAt } }';

async function submit(key: string, n: number, concurrency: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i += concurrency) {
    const batch = await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, () => call(key, 'POST', '/api/v1/functions/work/invocations?type=Event', {})));
    for (const r of batch) {
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      ids.push(r.body.id as string);
    }
  }
  return ids;
}

async function startTimes(key: string, ids: string[]): Promise<number[]> {
  const out: number[] = [];
  for (const id of ids) {
    const record = await waitFor(`execution ${id}`, async () => {
      const r = await call(key, 'GET', `/api/v1/executions/${id}`);
      return r.body.status === 'queued' || r.body.status === 'running' ? undefined : r.body;
    }, 60_000);
    expect(record.status, JSON.stringify(record)).toBe('succeeded');
    out.push(record.result.startedAt as number);
  }
  return out;
}

describe('fair share across tenants on a saturated template', () => {
  it('starts a light tenant\'s async jobs ahead of a flooding tenant\'s backlog', async () => {
    for (const key of [FLOOD, POLITE]) {
      expect((await call(key, 'POST', '/api/v1/functions', { name: 'work', runtime: 'nodejs20.x', code: { source: WORK } })).status).toBe(201);
      expect((await call(key, 'POST', '/api/v1/functions/work/invocations', {})).status).toBe(200);
    }
    const floodIds = await submit(FLOOD, FLOOD_JOBS, 25);
    const politeIds = await submit(POLITE, POLITE_JOBS, POLITE_JOBS);

    const polite = await startTimes(POLITE, politeIds);
    const flood = (await startTimes(FLOOD, floodIds)).sort((a, b) => a - b);
    // The flood's backlog was still there when polite's jobs started: TAIL of its jobs started later.
    const tailStart = flood[FLOOD_JOBS - TAIL] as number;
    expect(Math.max(...polite), `polite started at ${polite.join(', ')}; flood's last ${TAIL} from ${tailStart}`).toBeLessThan(tailStart);
  });
});
