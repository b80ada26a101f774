import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Edges of the one invocation path that every surface shares: reading a job while it finishes,
 * events nested too deeply, throttling of asynchronous work, and what a failed asynchronous
 * function invocation leaves behind (record, dead letter, metrics).
 */
let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2, maxSandboxes: 8 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const FINAL = ['succeeded', 'failed', 'timeout'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** `[[[...]]]` nested `depth` levels. */
const deepText = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('the invocation path', () => {
  it('never answers 404 for an execution that exists while it finishes', async () => {
    const code = 'exports.handler = (e) => new Promise((r) => setTimeout(() => r(e.i), 20 + (e.i % 7) * 15))';
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const res = await k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: { i }, wait: false });
      expect(res.status).toBe(202);
      ids.push(res.body.id);
    }
    const seen: Record<string, string[]> = {};
    await Promise.all(
      ids.map(async (id) => {
        const states: string[] = (seen[id] = []);
        const until = Date.now() + 20_000;
        for (;;) {
          const res = await k.call('GET', `/api/v1/executions/${id}`);
          states.push(res.status === 200 ? res.body.status : String(res.status));
          if ((res.status === 200 && FINAL.includes(res.body.status)) || Date.now() > until) return;
        }
      }),
    );
    const with404 = Object.entries(seen).filter(([, states]) => states.includes('404'));
    expect(with404.map(([id, states]) => `${id}: ${[...new Set(states)].join(' → ')}`)).toEqual([]);
    for (const states of Object.values(seen)) expect(states.at(-1)).toBe('succeeded');
  });

  it('refuses an event nested too deeply with 400 and a code on every surface that takes one', async () => {
    const deep = deepText(5000);
    const handler = 'exports.handler = async (e) => e';
    const rest = await k.call('POST', '/api/v1/executions', `{"code":${JSON.stringify(handler)},"language":"nodejs","event":${deep}}`);
    expect(rest.status).toBe(400);
    expect(rest.body.error.code).toBe('InvalidRequest');

    expect((await k.call('POST', '/api/v1/functions', { name: 'deep-echo', runtime: 'nodejs20.x', code: { source: handler } })).status).toBe(201);
    const fnRest = await k.call('POST', '/api/v1/functions/deep-echo/invocations', deep);
    expect(fnRest.status).toBe(400);
    expect(fnRest.body.error.code).toBe('InvalidRequest');

    for (const type of ['RequestResponse', 'Event']) {
      const lambda = await fetch(`${k.url}/2015-03-31/functions/deep-echo/invocations`, { method: 'POST', headers: { 'content-type': 'application/json', 'X-Amz-Invocation-Type': type }, body: deep });
      expect(lambda.status, type).toBe(400);
      expect(lambda.headers.get('x-amzn-errortype'), type).toBe('InvalidRequestContentException');
    }

    const mcp = await fetch(`${k.url}/mcp/functions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"function_invoke","arguments":{"name":"deep-echo","event":${deep}}}}`,
    });
    expect(mcp.status).toBe(400);
    const rpc = (await mcp.json()) as { error: { code: number; message: string } };
    expect(rpc.error.code).toBe(-32600);
    expect(rpc.error.message).toMatch(/nested more than \d+ levels/);

    await inSession(k, async (id) => {
      const res = await k.call('POST', `/api/v1/sessions/${id}/execute`, `{"code":${JSON.stringify(handler)},"event":${deep}}`);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('InvalidRequest');
    });
    // The limit is on nesting, not on events in general.
    const ok = await k.call('POST', '/api/v1/executions', `{"code":${JSON.stringify(handler)},"language":"nodejs","event":${deepText(100)}}`);
    expect(ok.status).toBe(200);
    expect(ok.body.status).toBe('succeeded');
  });

  it('throttles asynchronous work with the same queue limit as synchronous work', async () => {
    const created = await k.call('POST', '/api/v1/templates', {
      name: 'tiny',
      image: 'localhost/kiln/template-nodejs:0.1.0',
      runtimes: ['nodejs20.x'],
      pool: { minIdle: 0, maxSandboxes: 1, sandboxesPerExecutor: 1 },
      queue: { maxWaiting: 1 },
    });
    expect(created.status).toBe(201);
    const slow = 'exports.handler = () => new Promise((r) => setTimeout(r, 3000))';
    const statuses: number[] = [];
    // Spaced beyond the throttle's 100 ms count cache, so each submission sees the queue grow.
    for (let i = 0; i < 6; i++) {
      const res = await k.call('POST', '/api/v1/executions', { code: slow, language: 'nodejs', template: 'tiny', wait: false });
      statuses.push(res.status);
      if (res.status === 429) {
        expect(res.body.error.code).toBe('TooManyRequests');
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      }
      await sleep(150);
    }
    expect(statuses).toContain(202);
    expect(statuses).toContain(429);

    expect((await k.call('POST', '/api/v1/functions', { name: 'tiny-fn', runtime: 'nodejs20.x', template: 'tiny', code: { source: slow } })).status).toBe(201);
    const types: Array<string | null> = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${k.url}/2015-03-31/functions/tiny-fn/invocations`, { method: 'POST', headers: { 'content-type': 'application/json', 'X-Amz-Invocation-Type': 'Event' }, body: '{}' });
      types.push(res.status === 429 ? res.headers.get('x-amzn-errortype') : String(res.status));
      await sleep(150);
    }
    expect(types).toContain('TooManyRequestsException');
  });

  it('makes retried asynchronous submissions with one idempotency key one invocation, on REST and the Lambda API', async () => {
    expect((await k.call('POST', '/api/v1/functions', { name: 'idem', runtime: 'nodejs20.x', code: { source: 'exports.handler = async (e) => e' } })).status).toBe(201);
    const rest = await Promise.all([1, 2, 3].map(() => k.call('POST', '/api/v1/functions/idem/invocations?type=Event', { n: 1 }, { 'Idempotency-Key': 'order-1' })));
    expect(rest.map((r) => r.status)).toEqual([202, 202, 202]);
    expect(new Set(rest.map((r) => r.body.id)).size).toBe(1);
    const other = await k.call('POST', '/api/v1/functions/idem/invocations?type=Event', { n: 1 }, { 'Idempotency-Key': 'order-2' });
    expect(other.body.id).not.toBe(rest[0]?.body.id);
    const lambdaIds: Array<string | null> = [];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${k.url}/2015-03-31/functions/idem/invocations`, { method: 'POST', headers: { 'content-type': 'application/json', 'X-Amz-Invocation-Type': 'Event', 'X-Kiln-Idempotency-Key': 'order-1' }, body: '{}' });
      expect(res.status).toBe(202);
      lambdaIds.push(res.headers.get('x-amzn-requestid'));
    }
    expect(lambdaIds[0]).toBe(lambdaIds[1]);
    const bad = await k.call('POST', '/api/v1/executions', { code: 'exports.handler = async () => 1', language: 'nodejs', wait: false }, { 'Idempotency-Key': 'has space' });
    expect(bad.status).toBe(400);
    const doc = await k.call('GET', '/api/v1/openapi.json');
    expect(doc.body.paths['/api/v1/executions'].post.parameters.map((p: { name: string }) => p.name)).toContain('idempotency-key');
    await waitFor('the invocation', async () => ((await k.call('GET', `/api/v1/executions/${rest[0]?.body.id as string}`)).body.status === 'succeeded' ? true : undefined));
  });

  it('keeps a failed asynchronous function invocation\'s error type, message and logs, and counts it', async () => {
    const failing = 'exports.handler = async (e) => { console.log("log-line " + e.k); const err = new TypeError("bad " + e.k); throw err; }';
    expect((await k.call('POST', '/api/v1/functions', { name: 'async-fail', runtime: 'nodejs20.x', code: { source: failing }, maxRetryAttempts: 0 })).status).toBe(201);
    const queued = await k.call('POST', '/api/v1/functions/async-fail/invocations?type=Event', { k: 'v' });
    expect(queued.status).toBe(202);
    const [letter] = await waitFor('the dead letter', async () => {
      const r = await k.call('GET', '/api/v1/functions/async-fail/dead-letters');
      return r.body.deadLetters.length ? r.body.deadLetters : undefined;
    });
    expect(letter).toMatchObject({ id: queued.body.id, attempts: 1, error: { errorType: 'TypeError', errorMessage: 'bad v' } });
    expect(letter.logs).toContain('log-line v');
    const record = await k.call('GET', `/api/v1/executions/${queued.body.id}`);
    expect(record.body).toMatchObject({ status: 'failed', error: { errorType: 'TypeError', errorMessage: 'bad v' } });
    expect(record.body.logs).toContain('log-line v');
    const metrics = await (await fetch(`${k.url}/metrics`)).text();
    expect(metrics).toMatch(/^kiln_errors_total\{type="TypeError",tenant="default"\} [1-9]/m);
  });
});
