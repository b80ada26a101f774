import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln();
});
afterAll(async () => {
  await k?.stop();
});

const run = (code: string, event: unknown = {}, extra: Record<string, unknown> = {}) => k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event, ...extra });

describe('POST /api/v1/executions (nodejs, through queue, scheduler, gRPC and bubblewrap)', () => {
  it('returns the handler result, logs and a start type', async () => {
    const res = await run('exports.handler = async (e) => ({ sum: e.a + e.b })', { a: 1, b: 2 });
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('succeeded');
    expect(res.body.result).toEqual({ sum: 3 });
    expect(res.body.logs).toMatch(/REPORT RequestId: .*Duration/);
    expect(['warm', 'cold']).toContain(res.body.startType);
    const again = await run('exports.handler = async (e) => ({ sum: e.a + e.b })', { a: 2, b: 2 });
    expect(again.body.result).toEqual({ sum: 4 });
    expect(again.body.startType).toBe('hot');
  });

  it('gives the handler a Lambda-shaped context and captures console output', async () => {
    const res = await run(
      `exports.handler = async (e, ctx) => { console.log('hello', e.n); return { id: ctx.awsRequestId, fn: ctx.functionName, left: ctx.getRemainingTimeInMillis() }; }`,
      { n: 7 },
      { timeoutMs: 5000 },
    );
    expect(res.body.status).toBe('succeeded');
    expect(res.body.result.id).toBe(res.body.id);
    expect(typeof res.body.result.fn).toBe('string');
    expect(res.body.result.left).toBeGreaterThan(3000);
    expect(res.body.result.left).toBeLessThanOrEqual(5000);
    expect(res.body.logs).toMatch(/INFO\thello 7/);
  });

  it('returns a Lambda-shaped error when the handler throws', async () => {
    const res = await run(`exports.handler = async () => { const e = new TypeError('bad input'); throw e; }`);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('failed');
    expect(res.body.error.errorType).toBe('TypeError');
    expect(res.body.error.errorMessage).toBe('bad input');
    expect(Array.isArray(res.body.error.stackTrace)).toBe(true);
    expect(res.body.error.stackTrace.join('\n')).toMatch(/index\.js/);
  });

  it('kills a handler that loops forever at its timeout, and the sandbox is replaced', async () => {
    const t0 = Date.now();
    const res = await run('exports.handler = async () => { for (;;) {} }', {}, { timeoutMs: 500 });
    expect(res.body.status).toBe('timeout');
    expect(res.body.error.errorMessage).toBe('Task timed out after 0.50 seconds');
    expect(Date.now() - t0).toBeLessThan(5000);
    // The next execution gets a working sandbox.
    const next = await run('exports.handler = async () => 42');
    expect(next.body.result).toBe(42);
  });

  it('has no network: connecting to a server on the host fails', async () => {
    const server: Server = createServer((s) => s.end('reachable'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const res = await run(
        `const net = require('net');
         exports.handler = (e) => new Promise((resolve) => {
           const s = net.connect(e.port, '127.0.0.1');
           s.on('data', (d) => resolve('connected: ' + d));
           s.on('error', (err) => resolve('error: ' + err.code));
         });`,
        { port },
      );
      expect(res.body.status).toBe('succeeded');
      expect(res.body.result).toMatch(/^error: (ECONNREFUSED|ENETUNREACH)/);
      const dns = await run(`exports.handler = () => new Promise((r) => require('dns').lookup('example.com', (err) => r(err ? err.code : 'resolved')))`);
      expect(dns.body.result).not.toBe('resolved');
    } finally {
      server.close();
    }
  });

  it('can write to /workspace and /tmp but nowhere else', async () => {
    const res = await run(`const fs = require('fs');
      exports.handler = async () => {
        const out = {};
        for (const p of ['/workspace/a.txt', '/tmp/b.txt', '/usr/x.txt', '/etc/x.txt', '/var/task/x.txt', '/x.txt', '/opt/kiln/runtime/x.txt']) {
          try { fs.writeFileSync(p, 'hi'); out[p] = 'ok'; } catch (err) { out[p] = err.code; }
        }
        out.uid = process.getuid();
        return out;
      };`);
    const r = res.body.result;
    expect(r['/workspace/a.txt']).toBe('ok');
    expect(r['/tmp/b.txt']).toBe('ok');
    for (const p of ['/usr/x.txt', '/etc/x.txt', '/var/task/x.txt', '/x.txt', '/opt/kiln/runtime/x.txt']) expect(r[p]).toMatch(/EROFS|EACCES|EPERM|ENOENT/);
    expect(r.uid).toBe(1000);
  });

  it('runs asynchronously with wait:false and serves the record later', async () => {
    const res = await run('exports.handler = async () => "later"', {}, { wait: false });
    expect(res.status).toBe(202);
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    let record: any;
    for (let i = 0; i < 100; i++) {
      record = (await k.call('GET', `/api/v1/executions/${res.body.id}`)).body;
      if (record.status === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(record.status).toBe('succeeded');
    expect(record.result).toBe('later');
  });
});

describe('bad input gets a 4xx with a code and a message, and the control plane keeps serving', () => {
  it('malformed JSON', async () => {
    const res = await k.call('POST', '/api/v1/executions', '{"code": "x", ');
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('InvalidJSON');
  });

  it('unknown language', async () => {
    const res = await k.call('POST', '/api/v1/executions', { code: 'x', language: 'cobol' });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('InvalidRequest');
    expect(res.body.error.message).toMatch(/language/);
  });

  it('missing code', async () => {
    const res = await k.call('POST', '/api/v1/executions', { language: 'nodejs' });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/code is required/);
  });

  it('a 7 MB body', async () => {
    const res = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = () => 1', language: 'nodejs', event: { blob: 'x'.repeat(7 * 1024 * 1024) } });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('PayloadTooLarge');
  });

  it('an unknown execution id and an unknown route', async () => {
    const res = await k.call('GET', '/api/v1/executions/00000000-0000-4000-8000-000000000000');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('ExecutionNotFound');
    expect((await k.call('GET', '/api/v1/nope')).body.error.code).toBe('RouteNotFound');
  });

  it('a timeout above the maximum', async () => {
    const res = await run('exports.handler = () => 1', {}, { timeoutMs: 10_000_000 });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/timeoutMs must be at most/);
  });

  it('still serves afterwards', async () => {
    const health = await k.call('GET', '/api/v1/health');
    expect(health.status).toBe(200);
    expect(health.body.redis.ok).toBe(true);
    expect(health.body.executors.length).toBeGreaterThan(0);
    expect((await run('exports.handler = async () => "still here"')).body.result).toBe('still here');
  });
});

describe('API description', () => {
  it('serves an OpenAPI document and a browsable reference', async () => {
    const doc = await k.call('GET', '/api/v1/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toContain('/api/v1/executions');
    const page = await fetch(`${k.url}/docs`);
    expect(await page.text()).toContain('SwaggerUIBundle');
    expect((await fetch(`${k.url}/docs/assets/swagger-ui-bundle.js`)).status).toBe(200);
  });
});
