import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The reaper's side of pausing, with short clocks: a session paused past
 * KILN_SESSION_HIBERNATE_AFTER_MS is hibernated by itself, and one paused past
 * KILN_SESSION_PAUSED_RETENTION_MS is ended, its archive removed.
 */
let k: TestKiln;

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null },
    env: { KILN_SESSION_HIBERNATE_AFTER_MS: '1500', KILN_SESSION_PAUSED_RETENTION_MS: '12000' },
  });
});
afterAll(async () => {
  await k?.stop();
});

async function until(what: string, fn: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the reaper and paused sessions', () => {
  it('hibernates a session paused past the threshold, restores it on resume, and ends one paused past the retention', async () => {
    const made: string[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 600_000 });
        expect(s.status, JSON.stringify(s.body)).toBe(201);
        made.push(s.body.id as string);
        const w = await k.call('POST', `/api/v1/sessions/${s.body.id as string}/process/run`, { command: 'sh', args: ['-c', `echo session-${i} > mark`] });
        expect(w.status).toBe(200);
        expect((await k.call('POST', `/api/v1/sessions/${s.body.id as string}/pause`)).status).toBe(200);
      }
      const [a = '', b = ''] = made;
      const hibernated = async (id: string) => (await k.call('GET', `/api/v1/sessions/${id}`)).body.hibernated === true;
      await until('hibernation by the reaper', async () => (await hibernated(a)) && (await hibernated(b)));
      expect(existsSync(join(k.dataDir, 'blobs', 'hibernation', b))).toBe(true);

      const r = await k.call('POST', `/api/v1/sessions/${a}/resume`);
      expect([r.status, r.body.resumeType]).toEqual([200, 'restored']);
      const cat = await k.call('POST', `/api/v1/sessions/${a}/process/run`, { command: 'cat', args: ['mark'] });
      expect(cat.body.stdout).toBe('session-0\n');

      // b stays paused past the retention: ended, its archive gone.
      // The record goes first, then the archive (the reaper's two steps): both are waited for.
      await until('the end of a long pause', async () => (await k.call('GET', `/api/v1/sessions/${b}`)).status === 404 && !existsSync(join(k.dataDir, 'blobs', 'hibernation', b)));
      expect((await k.call('GET', `/api/v1/sessions/${a}`)).body.status).toBe('running');
    } finally {
      for (const id of made) await k.call('DELETE', `/api/v1/sessions/${id}`);
    }
  });
});
