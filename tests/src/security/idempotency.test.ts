import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The idempotency headers as a hostile client would use them: keys built to break the store or
 * the logs, a key replayed on another function to reach its invocation, and a key on a
 * synchronous call to make Kiln hand back someone else's result instead of running the code.
 */
let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const code = 'exports.handler = async (e) => ({ got: e.v })';

describe('idempotency keys', () => {
  it('refuses keys that are empty, too long or not printable ASCII with 400 and a code, on REST and the Lambda API', async () => {
    expect((await k.call('POST', '/api/v1/functions', { name: 'idem-a', runtime: 'nodejs20.x', code: { source: code } })).status).toBe(201);
    // fetch refuses raw control characters and non-Latin-1 in header values; what it can send:
    const bad = ['x'.repeat(257), 'with space', 'tab\tinside', 'ünïcode', ''];
    for (const key of bad) {
      const rest = await k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: { v: 1 }, wait: false }, { 'Idempotency-Key': key });
      expect([rest.status, rest.body?.error?.code], `REST ${JSON.stringify(key)}`).toEqual([400, 'InvalidRequest']);
      const lambda = await fetch(`${k.url}/2015-03-31/functions/idem-a/invocations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-amz-invocation-type': 'Event', 'X-Kiln-Idempotency-Key': key },
        body: '{}',
      });
      expect(lambda.status, `Lambda ${JSON.stringify(key)}`).toBe(400);
    }
  });

  it('scopes a key to its function: the same key elsewhere is another invocation, never the first one', async () => {
    expect((await k.call('POST', '/api/v1/functions', { name: 'idem-b', runtime: 'nodejs20.x', code: { source: code } })).status).toBe(201);
    const key = 'shared-key-0001';
    const a = await k.call('POST', '/api/v1/functions/idem-a/invocations?type=Event', { v: 'a' }, { 'Idempotency-Key': key });
    const b = await k.call('POST', '/api/v1/functions/idem-b/invocations?type=Event', { v: 'b' }, { 'Idempotency-Key': key });
    const adhoc = await k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: { v: 'c' }, wait: false }, { 'Idempotency-Key': key });
    const ids = [a.body?.id ?? a.body?.requestId, b.body?.id ?? b.body?.requestId, adhoc.body?.id];
    expect(ids.every((id) => typeof id === 'string' && id.length > 0), JSON.stringify([a.body, b.body, adhoc.body])).toBe(true);
    expect(new Set(ids).size).toBe(3);
  });

  it('is ignored on a synchronous call: the code runs, and nobody gets a cached result of another call', async () => {
    const key = 'sync-key-0001';
    const first = await k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: { v: 1 } }, { 'Idempotency-Key': key });
    const second = await k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: { v: 2 } }, { 'Idempotency-Key': key });
    expect([first.status, first.body.result]).toEqual([200, { got: 1 }]);
    expect([second.status, second.body.result]).toEqual([200, { got: 2 }]);
    expect(second.body.id).not.toBe(first.body.id);
  });
});
