import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { startRedisServer, type RedisServer } from '../support/redis-server.js';

/** A redis-server of this test's own (AOF on, as Kiln runs it), so stopping it touches no other test. */
const dir = mkdtempSync(join(tmpdir(), 'kiln-test-outage-'));
const socket = join(dir, 'redis.sock');
let server: RedisServer | undefined;

async function startRedis(): Promise<void> {
  server = await startRedisServer(dir, { appendOnly: true });
}

async function stopRedis(): Promise<void> {
  await server?.stop();
}

let k: TestKiln;
beforeAll(async () => {
  await startRedis();
  k = await startTestKiln({ redisSocket: socket });
  k.redis.on('error', () => undefined);
});
afterAll(async () => {
  await k?.stop();
  await stopRedis();
  rmSync(dir, { recursive: true, force: true });
});

const run = () => k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => "ok"', language: 'nodejs' });

describe('a Redis outage', () => {
  it('fails requests fast with 503 while Redis is down, and the service recovers when it returns', async () => {
    expect((await run()).body.result).toBe('ok');
    await stopRedis();
    await new Promise((r) => setTimeout(r, 300));

    const t0 = Date.now();
    const down = await run();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(down.status).toBe(503);
    expect(down.body.error.code).toBe('ServiceUnavailable');
    expect(down.headers.get('retry-after')).toBe('1');
    expect((await k.call('GET', '/api/v1/templates')).status).toBe(503);
    const health = await k.call('GET', '/api/v1/health');
    expect(health.status).toBe(503);
    expect(health.body.redis.ok).toBe(false);
    expect((await fetch(`${k.url}/metrics`)).status).toBe(503);

    await startRedis();
    // Connections, workers and the reply subscription come back by themselves.
    const end = Date.now() + 20_000;
    let res = await run();
    while (res.body.result !== 'ok' && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 250));
      res = await run();
    }
    expect(res.body.result).toBe('ok');
    expect((await k.call('GET', '/api/v1/health')).status).toBe(200);
    // Async jobs and the pool keeper work again too.
    const job = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => "later"', language: 'nodejs', wait: false });
    expect(job.status).toBe(202);
    const until = Date.now() + 10_000;
    let rec = await k.call('GET', `/api/v1/executions/${job.body.id}`);
    while (rec.body.status !== 'succeeded' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      rec = await k.call('GET', `/api/v1/executions/${job.body.id}`);
    }
    expect(rec.body.result).toBe('later');
  });
});
