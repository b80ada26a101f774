import { CreateFunctionCommand, DeleteFunctionCommand, GetFunctionCommand, InvokeCommand, LambdaClient, ListFunctionsCommand } from '@aws-sdk/client-lambda';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

const KEY = 'first-test-key-0123456789abcdef';
const OTHER = 'second-test-key-0123456789abcdef';
const ADMIN = 'admin-test-key-0123456789abcdef0';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: `${KEY}, ${OTHER}`, KILN_ADMIN_API_KEYS: ADMIN } });
});
afterAll(async () => {
  await k?.stop();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const lambdaWith = (secretAccessKey: string) => new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any-id', secretAccessKey }, maxAttempts: 1 });

describe('API keys', () => {
  it('REST: 401 with a code without a key or with a wrong one; 200 with either key, as Bearer or x-api-key', async () => {
    const none = await k.call('GET', '/api/v1/sessions');
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('Unauthorized');
    expect(none.body.error.message).toContain('Authorization: Bearer');
    const wrong = await k.call('GET', '/api/v1/sessions', undefined, bearer('not-a-key-at-all-000000'));
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.message).toContain('not known here');
    expect((await k.call('GET', '/api/v1/sessions', undefined, bearer(KEY))).status).toBe(200);
    expect((await k.call('GET', '/api/v1/sessions', undefined, { 'x-api-key': OTHER })).status).toBe(200);
    // An unauthenticated POST is refused before its body is looked at.
    expect((await k.call('POST', '/api/v1/executions', '{not json')).status).toBe(401);
    // Health and the OpenAPI document stay public.
    expect([200, 503]).toContain((await k.call('GET', '/api/v1/health')).status);
    expect((await k.call('GET', '/api/v1/openapi.json')).status).toBe(200);
  });

  it('templates: any key reads them, only an administrator key changes them', async () => {
    const template = { name: 'admin-only', image: 'x', runtimes: ['nodejs20.x'], pool: { minIdle: 0 } };
    expect((await k.call('GET', '/api/v1/templates', undefined, bearer(KEY))).status).toBe(200);
    const refused = await k.call('POST', '/api/v1/templates', template, bearer(KEY));
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('Forbidden');
    expect((await k.call('PUT', '/api/v1/templates/nodejs', { network: 'outbound' }, bearer(OTHER))).status).toBe(403);
    expect((await k.call('DELETE', '/api/v1/templates/nodejs', undefined, bearer(KEY))).status).toBe(403);
    const made = await k.call('POST', '/api/v1/templates', template, bearer(ADMIN));
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    // An administrator key is an API key too.
    expect((await k.call('GET', '/api/v1/sessions', undefined, bearer(ADMIN))).status).toBe(200);
    expect((await k.call('DELETE', '/api/v1/templates/admin-only', undefined, bearer(ADMIN))).status).toBeLessThan(300);
  });

  it('MCP: 401 without a key; the SDK client works with one', async () => {
    const refused = await fetch(`${k.url}/mcp/developer`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) });
    expect(refused.status).toBe(401);
    const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/executor`), { requestInit: { headers: bearer(KEY) } });
    const client = new Client({ name: 'auth-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['process_run']);
    } finally {
      await transport.terminateSession();
      await client.close();
    }
    const unauthorizedClient = new Client({ name: 'auth-test', version: '1.0.0' });
    await expect(unauthorizedClient.connect(new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/executor`)))).rejects.toThrow(/Unauthorized/);
  });

  it('PTY: the WebSocket upgrade needs a key too', async () => {
    const created = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' }, bearer(KEY));
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty`);
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => reject(new Error('opened without a key')));
        ws.on('error', () => undefined); // the refusal is reported through unexpected-response
      });
      expect(status).toBe(401);
      // Another key is another tenant (KILN_API_KEYS entries without a tenant: one each): 404.
      const foreign = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty`, { headers: bearer(OTHER) });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => reject(new Error('opened with another tenant\'s key')));
        ws.on('error', () => undefined);
      });
      expect(foreign).toBe(404);
      const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty`, { headers: bearer(KEY) });
      await new Promise<void>((resolve, reject) => {
        ws.on('open', () => resolve());
        ws.on('error', reject);
      });
      ws.close();
    } finally {
      await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, bearer(KEY));
    }
  });

  it('Lambda: SigV4 requests verify with a key as the secret access key; a wrong secret is refused', async () => {
    const good = lambdaWith(OTHER);
    const bad = lambdaWith('wrong-secret-0123456789abcdef');
    const zip = makeZip([{ path: 'index.js', content: 'exports.handler = async (e) => ({ echo: e.msg });' }]);
    try {
      await good.send(new CreateFunctionCommand({ FunctionName: 'auth-fn', Runtime: 'nodejs20.x', Role: 'unused', Handler: 'index.handler', Code: { ZipFile: zip } }));
      const out = await good.send(new InvokeCommand({ FunctionName: 'auth-fn', Payload: Buffer.from(JSON.stringify({ msg: 'signed' })) }));
      expect(JSON.parse(Buffer.from(out.Payload ?? []).toString('utf8'))).toEqual({ echo: 'signed' });
      // ARN names are encoded in the path, which SigV4 canonicalises once more.
      const arn = 'arn:aws:lambda:us-east-1:000000000000:function:auth-fn';
      expect((await good.send(new GetFunctionCommand({ FunctionName: arn }))).Configuration?.FunctionName).toBe('auth-fn');
      expect((await good.send(new ListFunctionsCommand({ MaxItems: 5 }))).Functions?.map((f) => f.FunctionName)).toContain('auth-fn');
      await expect(bad.send(new InvokeCommand({ FunctionName: 'auth-fn', Payload: Buffer.from('{}') }))).rejects.toMatchObject({ name: 'InvalidSignatureException', $metadata: { httpStatusCode: 403 } });
      await expect(bad.send(new ListFunctionsCommand({}))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
      // A body changed after signing (same length) no longer matches the signature.
      const tampering = lambdaWith(OTHER);
      tampering.middlewareStack.addRelativeTo(
        // The SDK's middleware types are a union that an inline function cannot pick from.
        ((next: (args: { request: { body?: unknown } }) => Promise<unknown>) => async (args: { request: { body?: unknown } }) => {
          args.request.body = '{"msg":"forged"}';
          return next(args);
        }) as never,
        { relation: 'after', toMiddleware: 'httpSigningMiddleware', name: 'tamper' },
      );
      await expect(tampering.send(new InvokeCommand({ FunctionName: 'auth-fn', Payload: Buffer.from('{"msg":"signed"}') }))).rejects.toMatchObject({ name: 'InvalidSignatureException' });
      tampering.destroy();
      // No signature and no key: refused in Lambda's error shape; a key works like on REST (the
      // function's own tenant's key: the other key is another tenant, which has no auth-fn).
      const unsigned = await fetch(`${k.url}/2015-03-31/functions/auth-fn/invocations`, { method: 'POST', body: '{}' });
      expect(unsigned.status).toBe(401);
      expect(unsigned.headers.get('x-amzn-errortype')).toBe('UnrecognizedClientException');
      const withKey = await fetch(`${k.url}/2015-03-31/functions/auth-fn/invocations`, { method: 'POST', body: '{"msg":"bearer"}', headers: bearer(OTHER) });
      expect(await withKey.json()).toEqual({ echo: 'bearer' });
      const otherTenant = await fetch(`${k.url}/2015-03-31/functions/auth-fn/invocations`, { method: 'POST', body: '{}', headers: bearer(KEY) });
      expect([otherTenant.status, otherTenant.headers.get('x-amzn-errortype')]).toEqual([404, 'ResourceNotFoundException']);
    } finally {
      await good.send(new DeleteFunctionCommand({ FunctionName: 'auth-fn' })).catch(() => undefined); // never created: nothing to delete
      good.destroy();
      bad.destroy();
    }
  });

  it('refuses keys that are too short at start-up, naming the variable', async () => {
    const { loadConfig } = await import('@kiln/control-plane/config');
    expect(() => loadConfig({ KILN_API_KEYS: 'short' })).toThrow(/KILN_API_KEYS: every key must be at least 16/);
    expect(loadConfig({ KILN_API_KEYS: ` ${KEY} ,,${OTHER}` }).apiKeys).toEqual([KEY, OTHER]);
    expect(loadConfig({}).apiKeys).toEqual([]);
  });
});
