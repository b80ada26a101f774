import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

// Requests that once ended a process: an executor (and every session on it) or the control
// plane. Each must answer the client with a 4xx and leave everything else serving. The control
// plane runs in this test's process, so an unhandled rejection there fails the file.

let k: TestKiln;
let session = '';
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null } });
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  session = res.body.id as string;
});
afterAll(async () => {
  if (session) await k?.call('DELETE', `/api/v1/sessions/${session}`);
  await k?.stop();
});

/** The executor still serves this session: a process runs and prints. */
async function stillServing(): Promise<void> {
  const res = await k.call('POST', `/api/v1/sessions/${session}/process/run`, { command: 'echo', args: ['alive'] });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  expect(res.body.stdout).toBe('alive\n');
}

describe('one request cannot end an executor or the control plane', () => {
  it('non-ASCII and control characters in a path give 404/400 and the executor keeps serving', async () => {
    for (const path of ['é', '日本/x', '\u0001ctl', 'a\u007fb', '😀', 'x\ny']) {
      const res = await fetch(`${k.url}/api/v1/sessions/${session}/files?path=${encodeURIComponent(path)}`);
      expect([400, 404], `${JSON.stringify(path)} → ${res.status}`).toContain(res.status);
      const body = (await res.json()) as { error: { code: string; data?: { path?: string } } };
      expect(body.error.code).toMatch(/FileNotFound|InvalidRequest|PathOutsideWorkspace/);
      if (body.error.code === 'FileNotFound') expect(body.error.data?.path).toBe(`/workspace/${path}`);
    }
    await stillServing();
  });

  it('a refused upload answers 400 while its body is still streaming, and nothing else is affected', async () => {
    const { port } = new URL(k.url);
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'PUT', path: `/api/v1/sessions/${session}/files?path=${encodeURIComponent('../escape')}`, headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      // A body that keeps coming: the answer must not wait for its end (it never ends on its own).
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      const timer = setInterval(() => {
        if (sent++ < 200 && !req.destroyed) req.write(chunk);
        else {
          clearInterval(timer);
          req.end();
        }
      }, 20);
      req.on('close', () => clearInterval(timer));
      req.on('response', () => {
        clearInterval(timer);
        req.end();
      });
    });
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body).error.code).toBe('PathOutsideWorkspace');
    await stillServing();
  });
});

describe("a client's mistakes are 4xx with a code that names them", () => {
  const call = (method: string, path: string, body?: unknown) => k.call(method, `/api/v1/sessions/${session}${path}`, body);

  it('signals: unknown pid, finished pid, unknown signal', async () => {
    expect((await call('POST', '/processes/99999/signal', { signal: 'SIGTERM' })).body.error.code).toBe('ProcessNotFound');
    const started = await call('POST', '/processes', { command: 'sleep', args: ['30'] });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const pid = started.body.pid as number;
    const bad = await call('POST', `/processes/${pid}/signal`, { signal: 'SIGNOPE' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('InvalidSignal');
    expect((await call('POST', `/processes/${pid}/signal`, { signal: '9' })).status).toBe(200);
    for (let i = 0; i < 50; i++) {
      const list = await call('GET', '/processes');
      if (!list.body.processes.find((p: { pid: number; running: boolean }) => p.pid === pid)?.running) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const again = await call('POST', `/processes/${pid}/signal`, { signal: 'SIGTERM' });
    expect(again.status).toBe(404);
    expect(again.body.error).toMatchObject({ code: 'ProcessNotFound', data: { finished: true } });
  });

  it('a NUL byte in a command, its arguments, cwd or environment is InvalidRequest', async () => {
    for (const body of [{ command: 'ec\u0000ho' }, { command: 'echo', args: ['a\u0000b'] }, { command: 'echo', cwd: '/work\u0000space' }, { command: 'echo', env: { A: 'x\u0000y' } }]) {
      const res = await call('POST', '/process/run', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe('InvalidRequest');
    }
    await stillServing();
  });

  it('an over-long file name is NameTooLong', async () => {
    const res = await fetch(`${k.url}/api/v1/sessions/${session}/files?path=${'n'.repeat(300)}`, { method: 'PUT', body: 'x' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('NameTooLong');
    const stat = await call('GET', `/files/stat?path=${'n'.repeat(300)}`);
    expect(stat.body.error.code).toBe('NameTooLong');
  });

  it('JSON nested 100,000 deep is a 400, on the hot route and the others', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const hot = await fetch(`${k.url}/api/v1/executions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"code":"exports.handler=async()=>1","language":"nodejs","event":${deep}}` });
    expect(hot.status).toBe(400);
    expect(((await hot.json()) as { error: { code: string } }).error.code).toBe('InvalidRequest');
    const other = await fetch(`${k.url}/api/v1/sessions/${session}/process/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"command":"echo","env":${deep}}` });
    expect(other.status).toBe(400);
    // Deep but within the limit still works.
    const ok = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async (e) => JSON.stringify(e).length', language: 'nodejs', event: JSON.parse('['.repeat(400) + ']'.repeat(400)) });
    expect(ok.body.result).toBe(800);
  });
});

describe('templates have bounds', () => {
  const base = { name: 'bounded', image: 'x', runtimes: ['nodejs20.x'] };
  it('refuses sizes past the documented bounds with 400 InvalidRequest naming the field', async () => {
    for (const [field, body] of [
      ['pool.maxSandboxes', { ...base, pool: { maxSandboxes: 100_000_000 } }],
      ['pool.sandboxesPerExecutor', { ...base, pool: { sandboxesPerExecutor: 8000 } }],
      ['pool.minIdle', { ...base, pool: { minIdle: 5000 } }],
      ['resources.cpu', { ...base, resources: { cpu: 1e9 } }],
      ['queue.maxWaiting', { ...base, queue: { maxWaiting: 1e12 } }],
      ['pool.idleTtlMs', { ...base, pool: { idleTtlMs: 1e15 } }],
    ] as const) {
      const res = await k.call('POST', '/api/v1/templates', body);
      expect(res.status, `${field}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(JSON.stringify(res.body.error)).toContain(field.split('.')[1]);
    }
    expect((await k.call('GET', '/api/v1/templates/bounded')).status).toBe(404);
  });

  it('skips a stored template past the bounds (or not JSON) instead of starting it', async () => {
    await k.redis.hset(`${k.prefix}:templates`, 'huge', JSON.stringify({ ...base, name: 'huge', pool: { maxSandboxes: 100_000_000, minIdle: 0 } }), 'garbled', '{not json');
    await k.redis.incr(`${k.prefix}:templates:v`);
    await k.kiln.templates.refresh();
    expect(k.kiln.templates.names()).not.toContain('huge');
    expect(k.kiln.templates.names()).not.toContain('garbled');
    await k.redis.hdel(`${k.prefix}:templates`, 'huge', 'garbled');
    await stillServing();
  });
});

describe('a template change reaches its sandboxes', () => {
  it('a warm sandbox booted before a network change is recycled, not leased with the old setting', async () => {
    const base = { name: 'reshaped', image: 'x', runtimes: ['nodejs20.x'], resources: { memoryMB: 128, diskMB: 64 }, pool: { minIdle: 1, maxSandboxes: 4, sandboxesPerExecutor: 4 } };
    expect((await k.call('POST', '/api/v1/templates', { ...base, network: 'none' })).status).toBe(201);
    const ifaces = async (): Promise<string> => {
      const s = await k.call('POST', '/api/v1/sessions', { template: 'reshaped' });
      expect(s.status, JSON.stringify(s.body)).toBe(201);
      try {
        return (await k.call('POST', `/api/v1/sessions/${s.body.id}/process/run`, { command: 'cat', args: ['/proc/net/route'] })).body.stdout as string;
      } finally {
        await k.call('DELETE', `/api/v1/sessions/${s.body.id}`);
      }
    };
    try {
      expect(await ifaces()).not.toContain('tap0');
      // Wait for the keeper to have a warm sandbox booted under "none" again.
      const pool = () => k.redis.smembers(`${k.prefix}:sbxs:reshaped`);
      let before: string[] = [];
      for (let i = 0; i < 100 && before.length === 0; i++) {
        before = await pool();
        if (before.length === 0) await new Promise((r) => setTimeout(r, 100));
      }
      expect(before.length).toBeGreaterThan(0);
      expect((await k.call('PUT', '/api/v1/templates/reshaped', { ...base, network: 'outbound' })).status).toBe(200);
      expect((await k.call('GET', '/api/v1/templates/reshaped')).body.network).toBe('outbound');
      // The keeper recycles the sandboxes made before the change within its next rounds.
      for (let i = 0; i < 100 && (await pool()).some((id) => before.includes(id)); i++) await new Promise((r) => setTimeout(r, 100));
      expect((await pool()).filter((id) => before.includes(id))).toEqual([]);
      // Every session after the change has the new network: none gets the warm "none" sandbox.
      for (let i = 0; i < 2; i++) expect(await ifaces()).toContain('tap0');
    } finally {
      await k.call('DELETE', '/api/v1/templates/reshaped');
    }
  });
});
