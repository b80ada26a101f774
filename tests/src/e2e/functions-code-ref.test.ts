import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { waitFor } from '../support/wait.js';

/**
 * A queued invocation names its function version's code package instead of carrying a copy:
 * the package is read from the blob store (cached per replica) only by a sandbox that must load
 * it. These tests hold that line, and the one it needs: a package replaced by a code update is
 * kept for the jobs queued before the update, which run the code they were submitted with.
 */
describe('function code travels by reference', () => {
  let k: TestKiln;
  beforeAll(async () => {
    k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null } });
  });
  afterAll(async () => {
    await k?.stop();
  });

  const finished = (id: string) =>
    waitFor(`execution ${id} to finish`, async () => {
      const r = await k.call('GET', `/api/v1/executions/${id}`);
      return r.body.status === 'queued' || r.body.status === 'running' ? undefined : r.body;
    });

  it('stores jobs without the code, however large the package', async () => {
    const marker = randomBytes(16).toString('hex');
    // About 400 KB of code: a copy in the job would show as the marker in its data.
    const source = `exports.handler = async (e) => ({ n: e.n + 1 });\n${`// ${marker}\n`.repeat(12_000)}`;
    expect((await k.call('POST', '/api/v1/functions', { name: 'big', runtime: 'nodejs20.x', code: { source } })).status).toBe(201);
    const sync = await k.call('POST', '/api/v1/functions/big/invocations', { n: 1 });
    expect(sync.body.result).toEqual({ n: 2 });
    const queued = await k.call('POST', '/api/v1/functions/big/invocations?type=Event', { n: 41 });
    expect(queued.status).toBe(202);
    expect((await finished(queued.body.id)).result).toEqual({ n: 42 });
    for (const id of [sync.body.id, queued.body.id]) {
      const data = await k.redis.hget(`${k.prefix}:q:nodejs:${id}`, 'data');
      expect(data, `job ${id} is stored`).toBeTruthy();
      expect(data).not.toContain(marker);
      expect(data).not.toContain(Buffer.from(`// ${marker}`).toString('base64').slice(0, 20));
      expect(JSON.parse(data as string).function.code).toMatch(/^code\//);
    }
  });

  it('runs a job queued before a code update with the code it was submitted with', async () => {
    const v1 = 'exports.handler = async () => "v1";';
    expect((await k.call('POST', '/api/v1/functions', { name: 'swap', runtime: 'nodejs20.x', code: { source: v1 } })).status).toBe(201);
    // Paused, the template's queue keeps the job waiting while the code changes under it.
    const queue = new Queue('nodejs', { connection: { path: inject('redisSocket') }, prefix: `${k.prefix}:q` });
    await queue.pause();
    let id: string;
    try {
      const queued = await k.call('POST', '/api/v1/functions/swap/invocations?type=Event', {});
      expect(queued.status).toBe(202);
      id = queued.body.id;
      const updated = await k.call('PUT', '/api/v1/functions/swap', { code: { source: 'exports.handler = async () => "v2";' } });
      expect(updated.status).toBe(200);
      expect((await k.call('GET', `/api/v1/executions/${id}`)).body.status).toBe('queued');
    } finally {
      await queue.resume();
      await queue.close();
    }
    expect((await finished(id)).result).toBe('v1');
    expect((await k.call('POST', '/api/v1/functions/swap/invocations', {})).body.result).toBe('v2');
    // Deleting the function deletes the retired package too, not only the one $LATEST uses
    // (the test's Kiln keeps blobs on disk, the default store).
    const folder = join(k.dataDir, 'blobs', 'code', 'default', 'swap');
    expect(readdirSync(folder)).toHaveLength(2);
    expect((await k.call('DELETE', '/api/v1/functions/swap')).status).toBe(204);
    expect(existsSync(folder) ? readdirSync(folder) : []).toEqual([]);
  });

  it('fails a job whose function was deleted while it waited, as Lambda drops such events', async () => {
    expect((await k.call('POST', '/api/v1/functions', { name: 'gone', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => 1;' } })).status).toBe(201);
    const queue = new Queue('nodejs', { connection: { path: inject('redisSocket') }, prefix: `${k.prefix}:q` });
    await queue.pause();
    let id: string;
    try {
      const queued = await k.call('POST', '/api/v1/functions/gone/invocations?type=Event', {});
      id = queued.body.id;
      expect((await k.call('DELETE', '/api/v1/functions/gone')).status).toBe(204);
    } finally {
      await queue.resume();
      await queue.close();
    }
    const record = await finished(id);
    expect(record.status).toBe('failed');
    expect(record.error.errorType).toBe('Kiln.CodeMissing');
  });
});
