import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * A full pool makes room for a new session by hibernating its longest-paused session (not a
 * running one, not by time: KILN_SESSION_HIBERNATE_AFTER_MS is off). Capacity is three
 * sandboxes of the template in all.
 */
let k: TestKiln;

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0, maxSandboxes: 3, sandboxesPerExecutor: 3 } }, python: null, shell: null, provided: null },
    env: { KILN_SESSION_HIBERNATE_AFTER_MS: '0' },
  });
});
afterAll(async () => {
  await k?.stop();
});

const get = async (id: string): Promise<{ status: string; hibernated?: boolean }> => (await k.call('GET', `/api/v1/sessions/${id}`)).body as { status: string; hibernated?: boolean };

describe('room for a new session on a full pool', () => {
  it('hibernates the longest-paused session (files kept) to place a new one, and restores it when there is room again', { timeout: 180_000 }, async () => {
    const made: string[] = [];
    const create = async (): Promise<string> => {
      const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 600_000 });
      expect(s.status, JSON.stringify(s.body)).toBe(201);
      made.push(s.body.id as string);
      return s.body.id as string;
    };
    try {
      const [older, newer, running] = [await create(), await create(), await create()];
      for (const id of [older, newer]) {
        const w = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', `echo ${id} > mark`] });
        expect(w.status).toBe(200);
      }
      expect((await k.call('POST', `/api/v1/sessions/${older}/pause`)).status).toBe(200);
      expect((await k.call('POST', `/api/v1/sessions/${newer}/pause`)).status).toBe(200);

      // Full: three sandboxes, two of them paused. The fourth session takes the older one's place.
      const fourth = await create();
      expect(await get(older)).toMatchObject({ status: 'paused', hibernated: true });
      expect(await get(newer)).toMatchObject({ status: 'paused', hibernated: false });
      expect(await get(running)).toMatchObject({ status: 'running' });
      expect((await k.call('GET', `/api/v1/sessions/${newer}/usage`)).body).toMatchObject({ paused: true, hibernated: false });

      // Resuming the hibernated one needs a slot too: the next paused session gives it.
      const r = await k.call('POST', `/api/v1/sessions/${older}/resume`);
      expect([r.status, r.body.resumeType], JSON.stringify(r.body)).toEqual([200, 'restored']);
      expect(await get(newer)).toMatchObject({ hibernated: true });
      const cat = await k.call('POST', `/api/v1/sessions/${older}/process/run`, { command: 'cat', args: ['mark'] });
      expect(cat.body.stdout).toBe(`${older}\n`);
      expect((await k.call('POST', `/api/v1/sessions/${fourth}/process/run`, { command: 'true' })).body.exitCode).toBe(0);
    } finally {
      for (const id of made) await k.call('DELETE', `/api/v1/sessions/${id}`);
    }
  });
});
