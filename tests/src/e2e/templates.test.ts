import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const template = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  image: 'localhost/kiln/template-nodejs:0.1.0',
  runtimes: ['nodejs20.x'],
  pool: { minIdle: 0, maxSandboxes: 2, sandboxesPerExecutor: 2 },
  ...extra,
});

const until = async (what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('templates API', () => {
  it('lists the seeded templates, stored in Redis', async () => {
    const res = await k.call('GET', '/api/v1/templates');
    expect(res.status).toBe(200);
    expect(res.body.templates.map((t: { name: string }) => t.name)).toEqual(['nodejs']);
    expect(await k.redis.hexists(`${k.prefix}:templates`, 'nodejs')).toBe(1);
  });

  it('creates a template whose worker and pool start at runtime, and runs code on it', async () => {
    const created = await k.call('POST', '/api/v1/templates', template('tpl-a'));
    expect(created.status).toBe(201);
    expect(created.body.resources.memoryMB).toBe(256);
    expect(created.body.queue.maxWaiting).toBe(10_000);
    expect((await k.call('GET', '/api/v1/templates/tpl-a')).body.name).toBe('tpl-a');
    const run = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => "on tpl-a"', language: 'nodejs', template: 'tpl-a' });
    expect(run.body.status).toBe('succeeded');
    expect(run.body.result).toBe('on tpl-a');
    expect(run.body.template).toBe('tpl-a');
  });

  it('rejects bad input (400), duplicates (409) and unknown names (404)', async () => {
    const bad = await k.call('POST', '/api/v1/templates', { name: 'Bad Name', image: 'x', runtimes: ['nodejs20.x'] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('InvalidRequest');
    expect(bad.body.error.message).toMatch(/^name: lowercase letters/);
    const noRuntime = await k.call('POST', '/api/v1/templates', { name: 'x1', image: 'x', runtimes: ['cobol'] });
    expect(noRuntime.status).toBe(400);
    const tooSmall = await k.call('POST', '/api/v1/templates', template('x2', { pool: { idleTtlMs: 5 } }));
    expect(tooSmall.status).toBe(400);
    expect(tooSmall.body.error.message).toMatch(/pool\.idleTtlMs/);
    const dup = await k.call('POST', '/api/v1/templates', template('tpl-a'));
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('TemplateExists');
    expect((await k.call('GET', '/api/v1/templates/nope')).status).toBe(404);
    expect((await k.call('DELETE', '/api/v1/templates/nope')).body.error.code).toBe('TemplateNotFound');
    expect((await k.call('PUT', '/api/v1/templates/nope', template('nope'))).status).toBe(404);
    const mismatch = await k.call('PUT', '/api/v1/templates/tpl-a', template('tpl-b'));
    expect(mismatch.status).toBe(400);
    expect(mismatch.body.error.message).toMatch(/must match the path/);
  });

  it('replaces a template with PUT', async () => {
    const replacement: Record<string, unknown> = template('tpl-a', { description: 'changed', pool: { minIdle: 1, maxSandboxes: 3, sandboxesPerExecutor: 2 } });
    delete replacement.name;
    const res = await k.call('PUT', '/api/v1/templates/tpl-a', replacement);
    expect(res.status).toBe(200);
    expect(res.body.description).toBe('changed');
    expect((await k.call('GET', '/api/v1/templates/tpl-a')).body.pool.maxSandboxes).toBe(3);
    // The keeper follows the new minIdle.
    await until('a warm sandbox of tpl-a', async () => (await k.redis.llen(`${k.prefix}:warm:tpl-a:nodejs`)) >= 1);
  });

  it('serves a template with one BullMQ Worker per 16 sandboxes, and follows a PUT that changes its size', async () => {
    const queue = new Queue('tpl-w', { connection: { path: inject('redisSocket') }, prefix: `${k.prefix}:q` });
    try {
      // Each Worker names its Redis connections after the queue; one Worker's count is the unit.
      expect((await k.call('POST', '/api/v1/templates', template('tpl-w'))).status).toBe(201);
      await until('its worker', async () => (await queue.getWorkers()).length > 0);
      const perWorker = (await queue.getWorkers()).length;
      const resize = async (maxSandboxes: number): Promise<void> => {
        const body: Record<string, unknown> = template('tpl-w', { pool: { minIdle: 0, maxSandboxes, sandboxesPerExecutor: 2 } });
        delete body.name;
        expect((await k.call('PUT', '/api/v1/templates/tpl-w', body)).status).toBe(200);
      };
      await resize(40);
      await until('three workers', async () => (await queue.getWorkers()).length === 3 * perWorker);
      // It still runs code, on any of them.
      const run = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => 7', language: 'nodejs', template: 'tpl-w' });
      expect(run.body.result).toBe(7);
      await resize(16);
      await until('one worker', async () => (await queue.getWorkers()).length === perWorker);
      expect((await k.call('DELETE', '/api/v1/templates/tpl-w')).status).toBe(204);
      await until('no worker', async () => (await queue.getWorkers()).length === 0);
    } finally {
      await queue.close();
    }
  });

  it('refuses to delete a template in use (409), deletes it when idle and stops its executors', async () => {
    const job = await k.call('POST', '/api/v1/executions', {
      code: 'exports.handler = () => new Promise((r) => setTimeout(() => r(1), 1500))',
      language: 'nodejs',
      template: 'tpl-a',
      wait: false,
    });
    expect(job.status).toBe(202);
    await until('the job to run', async () => (await k.call('GET', `/api/v1/executions/${job.body.id}`)).body.status === 'running');
    const busy = await k.call('DELETE', '/api/v1/templates/tpl-a');
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe('TemplateInUse');
    expect(busy.body.error.data.queuedJobs + busy.body.error.data.busySandboxes).toBeGreaterThan(0);
    await until('the job to finish', async () => (await k.call('GET', `/api/v1/executions/${job.body.id}`)).body.status === 'succeeded');
    const executors = await k.redis.zrange(`${k.prefix}:exes:tpl-a`, 0, -1);
    expect(executors.length).toBeGreaterThan(0);
    // Once idle: the pool keeper may still be booting tpl-a's replacement warm sandbox, which
    // counts as in use until it is up (a loaded machine makes that window long), so ask again.
    await until('tpl-a to be deleted once idle', async () => (await k.call('DELETE', '/api/v1/templates/tpl-a')).status === 204);
    expect((await k.call('GET', '/api/v1/templates/tpl-a')).status).toBe(404);
    const run = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => 1', language: 'nodejs', template: 'tpl-a' });
    expect(run.body.error.code).toBe('TemplateNotFound');
    await until('its executors to stop', async () => (await k.redis.exists(`${k.prefix}:exes:tpl-a`, `${k.prefix}:sbxs:tpl-a`)) === 0);
  });

  it('throttles sync requests with 429 and Retry-After when the queue is over maxWaiting', async () => {
    expect(
      (
        await k.call(
          'POST',
          '/api/v1/templates',
          template('tpl-slow', { pool: { minIdle: 1, maxSandboxes: 1, sandboxesPerExecutor: 1 }, queue: { maxWaiting: 1 } }),
        )
      ).status,
    ).toBe(201);
    await until('a warm sandbox of tpl-slow', async () => (await k.redis.llen(`${k.prefix}:warm:tpl-slow:nodejs`)) >= 1);
    const slow = 'exports.handler = () => new Promise((r) => setTimeout(() => r("slow"), 800))';
    const ids: string[] = [];
    for (let i = 0; i < 4; i++)
      ids.push((await k.call('POST', '/api/v1/executions', { code: slow, language: 'nodejs', template: 'tpl-slow', wait: false })).body.id);
    await new Promise((r) => setTimeout(r, 200));
    const res = await k.call('POST', '/api/v1/executions', { code: slow, language: 'nodejs', template: 'tpl-slow' });
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe('TooManyRequests');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Async submissions are not throttled, and everything queued still runs.
    // Four 800 ms jobs on one sandbox; a bound for a loaded CI machine, inside the test's 60 s.
    await until('the queue to drain', async () => {
      const all = await Promise.all(ids.map((id) => k.call('GET', `/api/v1/executions/${id}`)));
      return all.every((r) => r.body.status === 'succeeded');
    }, 50_000);
    const after = await k.call('POST', '/api/v1/executions', { code: slow, language: 'nodejs', template: 'tpl-slow' });
    expect(after.body.result).toBe('slow');
  });
});
