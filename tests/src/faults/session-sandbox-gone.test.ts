import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentPool } from '@kiln/control-plane/agent/client';
import type { ExecutorHandle } from '@kiln/control-plane/platforms/platform';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { until } from '../support/faults.js';

/**
 * A session's sandbox that goes while its executor lives on (here destroyed behind the control
 * plane's back, through the executor's own agent, as a crash of its init would): the session is
 * marked `lost` ("sandbox gone") without a call on it, never left `running` while every call
 * fails; the executor and the other session on it go on.
 */
describe("a session's sandbox gone from a live executor", () => {
  let k: TestKiln;
  const agents = new AgentPool();
  beforeAll(async () => {
    k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0, maxSandboxes: 4, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null } });
  });
  afterAll(async () => {
    agents.closeAll();
    await k?.stop();
  });

  it('is marked lost with a reason without a call on it, and its neighbour lives on', { timeout: 60_000 }, async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const created = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      ids.push(created.body.id as string);
    }
    const [victim, neighbour] = ids as [string, string];
    const record = JSON.parse((await k.redis.get(`${k.prefix}:ses:${victim}`)) as string) as { executorId: string; sandboxId: string };
    const handle = JSON.parse(readFileSync(join(k.dataDir, 'executors', `${record.executorId}.json`), 'utf8')) as ExecutorHandle;
    expect(await agents.get(handle).destroySandbox(record.sandboxId)).toBe(true);

    await until('the session to be marked lost without a call on it', async () => {
      const raw = await k.redis.get(`${k.prefix}:ses:${victim}`);
      return raw !== null && (JSON.parse(raw) as { state?: string }).state === 'lost';
    }, 30_000);
    expect((await k.call('GET', `/api/v1/sessions/${victim}`)).body).toMatchObject({ status: 'lost', lostReason: 'sandbox gone' });
    const run = await k.call('POST', `/api/v1/sessions/${victim}/process/run`, { command: 'true' });
    expect({ status: run.status, code: run.body.error?.code }).toEqual({ status: 410, code: 'SessionLost' });

    const alive = await k.call('POST', `/api/v1/sessions/${neighbour}/process/run`, { command: 'echo', args: ['fine'] });
    expect(alive.body.stdout, JSON.stringify(alive.body)).toBe('fine\n');
    expect((await k.call('GET', `/api/v1/sessions/${neighbour}`)).body.status).toBe('running');
    for (const id of ids) expect((await k.call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
  });
});
