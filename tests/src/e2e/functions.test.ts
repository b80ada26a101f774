import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln();
});
afterAll(async () => {
  await k?.stop();
});

const COUNTER = `let n = 0; exports.handler = async (e, ctx) => ({ n: ++n, v: ctx.functionVersion, greeting: process.env.GREETING ?? null, e });`;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('/api/v1/functions', () => {
  it('creates from inline source, gets, lists, updates and invokes', async () => {
    const created = await k.call('POST', '/api/v1/functions', { name: 'rest-counter', runtime: 'nodejs20.x', code: { source: COUNTER }, environment: { GREETING: 'hello' }, memorySize: 256 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'rest-counter', version: '$LATEST', template: 'nodejs', handler: 'index.handler', timeout: 3, memorySize: 256, maxRetryAttempts: 2 });
    expect(created.body.codeBlob).toBeUndefined();
    expect((await k.call('GET', '/api/v1/functions/rest-counter')).body.environment).toEqual({ GREETING: 'hello' });
    expect((await k.call('GET', '/api/v1/functions')).body.functions.map((f: { name: string }) => f.name)).toContain('rest-counter');

    const first = await k.call('POST', '/api/v1/functions/rest-counter/invocations', { x: 1 });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ status: 'succeeded', version: '$LATEST', result: { n: 1, v: '$LATEST', greeting: 'hello', e: { x: 1 } } });
    expect((await k.call('POST', '/api/v1/functions/rest-counter/invocations', {})).body.result.n).toBe(2);
    // An empty body is the event {}.
    expect((await k.call('POST', '/api/v1/functions/rest-counter/invocations')).body.result.e).toEqual({});

    const updated = await k.call('PUT', '/api/v1/functions/rest-counter', { environment: { GREETING: 'bonjour' } });
    expect(updated.status).toBe(200);
    expect(updated.body.revisionId).not.toBe(created.body.revisionId);
    // New configuration → new instance: module state starts over.
    const after = await k.call('POST', '/api/v1/functions/rest-counter/invocations', {});
    expect(after.body.result).toMatchObject({ n: 1, greeting: 'bonjour' });

    const published = await k.call('POST', '/api/v1/functions/rest-counter/versions');
    expect(published.status).toBe(201);
    expect(published.body.version).toBe('1');
    const versions = await k.call('GET', '/api/v1/functions/rest-counter/versions');
    expect(versions.body.versions.map((v: { version: string }) => v.version)).toEqual(['$LATEST', '1']);
    const pinned = await k.call('POST', '/api/v1/functions/rest-counter/invocations?qualifier=1', {});
    expect(pinned.body.result.v).toBe('1');

    const zipped = await k.call('PUT', '/api/v1/functions/rest-counter', { code: { zipFile: makeZip([{ path: 'index.js', content: 'exports.handler = async () => "zipped"' }]).toString('base64') } });
    expect(zipped.status).toBe(200);
    expect((await k.call('POST', '/api/v1/functions/rest-counter/invocations', {})).body.result).toBe('zipped');
    expect((await k.call('POST', '/api/v1/functions/rest-counter/invocations?type=DryRun', {})).status).toBe(204);

    expect((await k.call('DELETE', '/api/v1/functions/rest-counter?qualifier=1')).status).toBe(204);
    expect((await k.call('GET', '/api/v1/functions/rest-counter?qualifier=1')).status).toBe(404);
    expect((await k.call('DELETE', '/api/v1/functions/rest-counter')).status).toBe(204);
    expect((await k.call('GET', '/api/v1/functions/rest-counter')).status).toBe(404);
  });

  it('rejects bad input with clear errors', async () => {
    const base = { name: 'rest-bad', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => 1' } };
    const cases: [unknown, number, string, RegExp][] = [
      [{ ...base, runtime: 'ruby2.7' }, 400, 'InvalidRequest', /runtime must be one of nodejs20\.x/],
      [{ ...base, name: 'bad name!' }, 400, 'InvalidRequest', /function name must be 1-64/],
      [{ ...base, name: 'x'.repeat(65) }, 400, 'InvalidRequest', /function name/],
      [{ ...base, timeout: 0 }, 400, 'InvalidRequest', /timeout must be an integer between 1 and 900; got 0/],
      [{ ...base, memorySize: 64 }, 400, 'InvalidRequest', /memorySize must be an integer between 128/],
      [{ ...base, handler: 'nodot' }, 400, 'InvalidRequest', /module\.function/],
      [{ ...base, template: 'nope' }, 400, 'InvalidRequest', /template "nope" does not exist/],
      [{ ...base, environment: { 'BAD-NAME': 'x' } }, 400, 'InvalidRequest', /environment variable name/],
      [{ ...base, code: {} }, 400, 'InvalidRequest', /exactly one of zipFile or source/],
      [{ ...base, code: { zipFile: '!!!not base64!!!' } }, 400, 'InvalidRequest', /base64/],
      [{ ...base, code: { zipFile: Buffer.from('plain text').toString('base64') } }, 400, 'InvalidZip', /not a usable zip/],
      [{ ...base, unknown: 1 }, 400, 'InvalidRequest', /unknown|Unrecognized/i],
    ];
    for (const [body, status, code, message] of cases) {
      const res = await k.call('POST', '/api/v1/functions', body);
      expect({ status: res.status, code: res.body.error?.code }, JSON.stringify(body).slice(0, 120)).toEqual({ status, code });
      expect(res.body.error.message).toMatch(message);
    }
    expect((await k.call('POST', '/api/v1/functions', '{"name":')).status).toBe(400);
    expect((await k.call('POST', '/api/v1/functions', base)).status).toBe(201);
    const dup = await k.call('POST', '/api/v1/functions', base);
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('FunctionExists');
  });

  it('answers unknown functions with 404 and bad payloads with 400/413', async () => {
    const missing = await k.call('POST', '/api/v1/functions/nope/invocations', {});
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('FunctionNotFound');
    expect((await k.call('PUT', '/api/v1/functions/nope', { timeout: 5 })).status).toBe(404);
    expect((await k.call('DELETE', '/api/v1/functions/nope')).status).toBe(404);
    expect((await k.call('GET', '/api/v1/functions/nope/dead-letters')).status).toBe(404);
    // A qualifier that could be an alias name is looked up as one (404); anything else is 400.
    const noAlias = await k.call('GET', '/api/v1/functions/rest-bad?qualifier=banana');
    expect([noAlias.status, noAlias.body.error.code]).toEqual([404, 'AliasNotFound']);
    expect((await k.call('GET', '/api/v1/functions/rest-bad?qualifier=ban.ana')).status).toBe(400);
    const notJson = await k.call('POST', '/api/v1/functions/rest-bad/invocations', '{oops');
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('InvalidRequestContent');
    const tooBig = await k.call('POST', '/api/v1/functions/rest-bad/invocations', { s: 'x'.repeat(6 * 1024 * 1024) });
    expect(tooBig.status).toBe(413);
    const asyncBig = await k.call('POST', '/api/v1/functions/rest-bad/invocations?type=Event', { s: 'x'.repeat(1024 * 1024) });
    expect(asyncBig.status).toBe(413);
    expect(asyncBig.body.error.code).toBe('PayloadTooLarge');
    expect((await k.call('POST', '/api/v1/functions/rest-bad/invocations?type=Sometimes', {})).status).toBe(400);
  });

  it('retries a failing async invocation, dead-letters it, and replays it', async () => {
    const failing = `exports.handler = async (e) => { console.log('attempt'); throw new Error('broken ' + e.k); }`;
    expect((await k.call('POST', '/api/v1/functions', { name: 'rest-dlq', runtime: 'nodejs20.x', code: { source: failing }, maxRetryAttempts: 2 })).status).toBe(201);
    const t0 = Date.now();
    const queued = await k.call('POST', '/api/v1/functions/rest-dlq/invocations?type=Event', { k: 'v' });
    expect(queued.status).toBe(202);
    const letters = await waitFor('the dead letter', async () => {
      const r = await k.call('GET', '/api/v1/functions/rest-dlq/dead-letters');
      return r.body.deadLetters.length ? r.body.deadLetters : undefined;
    });
    const retryMs = Date.now() - t0;
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ id: queued.body.id, qualifier: '$LATEST', attempts: 3, event: '{"k":"v"}', error: { errorType: 'Error', errorMessage: 'broken v' } });
    // Exponential backoff from 1 s: retries after ~1 s and ~2 s.
    expect(retryMs).toBeGreaterThan(2500);
    const record = await k.call('GET', `/api/v1/executions/${queued.body.id}`);
    expect(record.body.status).toBe('failed');

    // Fix the function, then replay: the event runs again and the entry is gone.
    await k.call('PUT', '/api/v1/functions/rest-dlq', { code: { source: 'exports.handler = async (e) => ({ fixed: e.k })' } });
    const replay = await k.call('POST', `/api/v1/functions/rest-dlq/dead-letters/${queued.body.id}/replay`);
    expect(replay.status).toBe(202);
    expect((await k.call('GET', '/api/v1/functions/rest-dlq/dead-letters')).body.deadLetters).toEqual([]);
    const done = await waitFor('the replayed invocation', async () => {
      const r = await k.call('GET', `/api/v1/executions/${replay.body.id}`);
      return r.body.status === 'succeeded' ? r.body : undefined;
    });
    expect(done.result).toEqual({ fixed: 'v' });
    const again = await k.call('POST', `/api/v1/functions/rest-dlq/dead-letters/${queued.body.id}/replay`);
    expect(again.status).toBe(404);
    expect(again.body.error.code).toBe('DeadLetterNotFound');
  });

  it('documents the routes in the OpenAPI document', async () => {
    const doc = await k.call('GET', '/api/v1/openapi.json');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/api/v1/functions', '/api/v1/functions/{name}/invocations', '/api/v1/functions/{name}/dead-letters/{id}/replay']));
  });

  it('does not retry when maxRetryAttempts is 0', async () => {
    await k.call('POST', '/api/v1/functions', { name: 'rest-noretry', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => { throw new Error("no") }' }, maxRetryAttempts: 0 });
    await k.call('POST', '/api/v1/functions/rest-noretry/invocations?type=Event', {});
    const letters = await waitFor('the dead letter', async () => {
      const r = await k.call('GET', '/api/v1/functions/rest-noretry/dead-letters');
      return r.body.deadLetters.length ? r.body.deadLetters : undefined;
    });
    expect(letters[0].attempts).toBe(1);
  });
});
