import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { captureLog, executorPids, until } from '../support/faults.js';

/**
 * An executor SIGKILLed while it holds a session and warm sandboxes: the session becomes `lost`
 * with a reason (never 404 while its record is kept), its operations answer 410 SessionLost,
 * the executor's directories go, and the dead executor is dropped from scheduling once (one log
 * line, no storm of boot failures from the requests that arrive meanwhile).
 */
describe('an executor SIGKILLed mid-session', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({
      templates: { nodejs: { pool: { minIdle: 2, maxSandboxes: 8, sandboxesPerExecutor: 4 } }, python: null, shell: null, provided: null },
    });
  });
  afterAll(async () => {
    await k?.stop();
  });

  const kill = (executorId: string): void => {
    const exe = executorPids(k.dataDir).find((e) => e.id === executorId);
    if (!exe) throw new Error(`no state file for executor ${executorId}`);
    process.kill(exe.pid, 'SIGKILL');
  };

  it('marks its session lost with a reason, answers 410 on it, and never 404 while the record is kept (defect 7)', { timeout: 40_000 }, async () => {
    const created = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const record = JSON.parse((await k.redis.get(`${k.prefix}:ses:${id}`)) as string) as { executorId: string };
    kill(record.executorId);

    // From the kill on, the session is running until noticed, then lost: never 404.
    const seen = new Set<string>();
    await until('the session to be reported lost', async () => {
      const res = await k.call('GET', `/api/v1/sessions/${id}`);
      seen.add(res.status === 200 ? res.body.status : `http ${res.status}`);
      return res.status === 200 && res.body.status === 'lost';
    });
    expect([...seen].filter((s) => s !== 'running' && s !== 'lost')).toEqual([]);
    const lost = await k.call('GET', `/api/v1/sessions/${id}`);
    expect(lost.body.lostReason).toMatch(/executor/);
    expect(typeof lost.body.lostAt).toBe('string');
    expect((await k.call('GET', '/api/v1/sessions')).body.sessions.find((s: { id: string }) => s.id === id)?.status).toBe('lost');
    const run = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'true' });
    expect({ status: run.status, code: run.body.error?.code }).toEqual({ status: 410, code: 'SessionLost' });
    expect((await k.call('POST', `/api/v1/sessions/${id}/keepalive`, {})).status).toBe(410);
    // Deleting a lost session removes it; after that it is unknown.
    expect((await k.call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
    expect((await k.call('GET', `/api/v1/sessions/${id}`)).status).toBe(404);
  });

  it("drops the dead executor once, without a storm of boot failures, and removes its session's files (defect 6)", { timeout: 40_000 }, async () => {
    await until('the warm pool back', async () => (await k.redis.llen(`${k.prefix}:warm:nodejs:nodejs`)) >= 2);
    const created = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const wrote = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', 'echo secret > notes.txt && echo ok'] });
    expect(wrote.body.stdout?.trim(), JSON.stringify(wrote.body)).toBe('ok');
    const record = JSON.parse((await k.redis.get(`${k.prefix}:ses:${id}`)) as string) as { executorId: string; sandboxId: string };
    const executorDir = join(k.dataDir, 'sandboxes', record.executorId);
    expect(existsSync(join(executorDir, 'sandboxes', record.sandboxId, 'workspace', 'notes.txt'))).toBe(true);

    const logs = captureLog();
    try {
      kill(record.executorId);
      // Work that arrives right after the kill: each needs a sandbox, and the dead executor's
      // warm ones and free slots are what Redis offers first.
      const calls = Array.from({ length: 6 }, (_, i) =>
        k.call('POST', '/api/v1/executions', { code: `exports.handler = async () => ${i}`, language: 'nodejs', timeoutMs: 5000 }),
      );
      // Every call gets an answer (those that had its warm sandboxes fail with Kiln.ExecutorLost).
      for (const res of await Promise.all(calls)) expect(res.status, JSON.stringify(res.body)).toBe(200);
      await until("the dead executor's directories, the session's files with them, to be removed", () => !existsSync(executorDir));
      expect(logs.lines('executor lost')).toBe(1);
      expect(logs.lines('sandbox boot failed')).toBeLessThanOrEqual(2);
    } finally {
      logs.stop();
    }
    await k.call('DELETE', `/api/v1/sessions/${id}`);
  });
});
