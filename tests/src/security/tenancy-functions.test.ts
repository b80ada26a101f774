import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  InvokeCommand,
  LambdaClient,
  ListFunctionsCommand,
  ListVersionsByFunctionCommand,
  PublishVersionCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Functions, executions and dead letters as a second customer would attack them: tenant beta
 * knows (or guesses) the names, ARNs, execution ids and idempotency keys of tenant alpha and
 * tries every route with them, over REST, the AWS SDK and the MCP client. Each answer must be
 * the one a missing resource gets (404), and alpha's functions must be exactly as before.
 */
const ALPHA = 'alpha-key-0123456789abcdef';
const BETA = 'beta-key-0123456789abcdef0';
const ADMIN = 'admin-key-0123456789abcdef';

let k: TestKiln;
const clients: LambdaClient[] = [];
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN },
  });
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await k?.stop();
});

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const call = (key: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => k.call(method, path, body, { ...as(key), ...headers });
function lambdaOf(key: string): LambdaClient {
  const c = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: key }, maxAttempts: 1 });
  clients.push(c);
  return c;
}
const decode = (p: Uint8Array | undefined) => JSON.parse(Buffer.from(p ?? []).toString('utf8'));

/** Module state (a counter) shows which instance ran; the ARN shows whose function it is. */
const helloOf = (tenant: string) => `let n = 0;
exports.handler = async (event, ctx) => ({ tenant: '${tenant}', n: ++n, arn: ctx.invokedFunctionArn, echo: event.echo ?? null });`;

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function mcpOf(key: string): Promise<{ client: Client; close: () => Promise<void> }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/functions`), { requestInit: { headers: as(key) } });
  const client = new Client({ name: 'tenancy-test', version: '1.0.0' });
  await client.connect(transport);
  return {
    client,
    close: async () => {
      await transport.terminateSession();
      await client.close();
    },
  };
}
type ToolResult = { isError?: boolean; structuredContent?: any; content: Array<{ type: string; text?: string }> };
const tool = async (client: Client, name: string, args: Record<string, unknown>) => (await client.callTool({ name, arguments: args })) as ToolResult;

/** What alpha can see of one of its functions: compared before and after beta's attempts. */
async function alphaState(name: string) {
  const fn = await call(ALPHA, 'GET', `/api/v1/functions/${name}`);
  const versions = await call(ALPHA, 'GET', `/api/v1/functions/${name}/versions`);
  const letters = await call(ALPHA, 'GET', `/api/v1/functions/${name}/dead-letters`);
  return { fn: [fn.status, fn.body.revisionId, fn.body.codeSha256], versions: versions.body.versions?.map((v: { version: string }) => v.version), deadLetters: letters.body.deadLetters?.map((d: { id: string }) => d.id) };
}

describe('function names are per tenant', () => {
  it('lets alpha and beta both have hello, each running its own code (REST, Lambda SDK, MCP)', async () => {
    for (const [key, tenant] of [[ALPHA, 'alpha'], [BETA, 'beta']] as const) {
      const made = await call(key, 'POST', '/api/v1/functions', { name: 'hello', runtime: 'nodejs20.x', code: { source: helloOf(tenant) } });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      expect(made.body).toMatchObject({ tenant, name: 'hello' });
    }
    const a = await call(ALPHA, 'POST', '/api/v1/functions/hello/invocations', { echo: 1 });
    const b = await call(BETA, 'POST', '/api/v1/functions/hello/invocations', { echo: 2 });
    expect(a.body.result).toMatchObject({ tenant: 'alpha', echo: 1, arn: 'arn:aws:lambda:us-east-1:alpha:function:hello' });
    expect(b.body.result).toMatchObject({ tenant: 'beta', echo: 2, arn: 'arn:aws:lambda:us-east-1:beta:function:hello' });

    const viaSdk = await lambdaOf(BETA).send(new InvokeCommand({ FunctionName: 'hello', Payload: Buffer.from('{"echo":3}') }));
    expect(decode(viaSdk.Payload)).toMatchObject({ tenant: 'beta', echo: 3 });
    const listed = await lambdaOf(ALPHA).send(new ListFunctionsCommand({}));
    expect(listed.Functions?.map((f) => [f.FunctionName, f.FunctionArn, f.Role])).toEqual([['hello', 'arn:aws:lambda:us-east-1:alpha:function:hello', 'arn:aws:iam::alpha:role/kiln']]);

    const mcp = await mcpOf(ALPHA);
    try {
      const list = await tool(mcp.client, 'function_list', {});
      expect(list.structuredContent.functions.map((f: { name: string }) => f.name)).toEqual(['hello']);
      const out = await tool(mcp.client, 'function_invoke', { name: 'hello', event: { echo: 4 } });
      expect(out.isError, JSON.stringify(out.content)).toBeFalsy();
      expect(out.structuredContent.result).toMatchObject({ tenant: 'alpha', echo: 4 });
    } finally {
      await mcp.close();
    }
  });

  it('never lets two tenants share an instance of the same ad-hoc code (module state)', async () => {
    const code = 'let n = 0; exports.handler = async () => ({ n: ++n })';
    const run = async (key: string) => (await call(key, 'POST', '/api/v1/executions', { code, language: 'nodejs' })).body.result.n as number;
    expect(await run(ALPHA)).toBe(1);
    expect(await run(ALPHA)).toBe(2);
    // The same code from beta: a fresh instance, not alpha's hot one with n = 2.
    expect(await run(BETA)).toBe(1);
  });
});

describe('beta against alpha\'s functions', () => {
  let deadLetterId: string;
  beforeAll(async () => {
    const failing = 'exports.handler = async () => { throw new Error("alpha broke") }';
    expect((await call(ALPHA, 'POST', '/api/v1/functions', { name: 'secret-fn', runtime: 'nodejs20.x', code: { source: failing }, maxRetryAttempts: 0 })).status).toBe(201);
    expect((await call(ALPHA, 'POST', '/api/v1/functions/secret-fn/versions', {})).status).toBe(201);
    const queued = await call(ALPHA, 'POST', '/api/v1/functions/secret-fn/invocations?type=Event', { k: 'v' });
    deadLetterId = queued.body.id;
    await waitFor('alpha\'s dead letter', async () => ((await call(ALPHA, 'GET', '/api/v1/functions/secret-fn/dead-letters')).body.deadLetters.length ? true : undefined));
  });

  it('REST: every function route answers 404 by name or with ?tenant=alpha, lists show nothing, and alpha\'s function is unchanged', async () => {
    const before = await alphaState('secret-fn');
    expect(before.deadLetters).toEqual([deadLetterId]);
    const update = { code: { source: 'exports.handler = async () => "beta was here"' } };
    for (const q of ['', '?tenant=alpha']) {
      const sep = q ? '&' : '?';
      const attempts: Array<[string, string, unknown?]> = [
        ['GET', `/api/v1/functions/secret-fn${q}`],
        ['GET', `/api/v1/functions/secret-fn${q}${sep}qualifier=1`],
        ['PUT', `/api/v1/functions/secret-fn${q}`, update],
        ['POST', `/api/v1/functions/secret-fn/versions${q}`, {}],
        ['GET', `/api/v1/functions/secret-fn/versions${q}`],
        ['DELETE', `/api/v1/functions/secret-fn${q}${sep}qualifier=1`],
        ['DELETE', `/api/v1/functions/secret-fn${q}`],
        ['POST', `/api/v1/functions/secret-fn/invocations${q}`, {}],
        ['POST', `/api/v1/functions/secret-fn/invocations${q}${sep}type=Event`, {}],
        ['POST', `/api/v1/functions/secret-fn/invocations${q}${sep}type=DryRun`, {}],
        ['GET', `/api/v1/functions/secret-fn/dead-letters${q}`],
        ['POST', `/api/v1/functions/secret-fn/dead-letters/${deadLetterId}/replay${q}`],
      ];
      for (const [method, path, body] of attempts) {
        const res = await call(BETA, method, path, body);
        expect([res.status, res.body?.error?.code], `${method} ${path}`).toEqual([404, 'FunctionNotFound']);
      }
    }
    // Beta's own hello is not alpha's: updating it by name changes beta's only.
    expect((await call(BETA, 'PUT', '/api/v1/functions/hello?tenant=alpha', update)).status).toBe(404);
    // Creating in alpha's namespace: as if alpha did not exist.
    const create = await call(BETA, 'POST', '/api/v1/functions?tenant=alpha', { name: 'planted', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => 1' } });
    expect([create.status, create.body.error?.code]).toEqual([404, 'TenantNotFound']);
    const list = await call(BETA, 'GET', '/api/v1/functions?tenant=alpha');
    expect([list.status, list.body.functions]).toEqual([200, []]);
    expect((await call(BETA, 'GET', '/api/v1/functions')).body.functions.map((f: { name: string }) => f.name)).toEqual(['hello']);
    expect(await alphaState('secret-fn')).toEqual(before);
    expect((await call(ALPHA, 'GET', '/api/v1/functions')).body.functions.map((f: { name: string }) => f.name)).toEqual(['hello', 'secret-fn']);
  });

  it('Lambda SDK: alpha\'s ARN is ResourceNotFoundException for beta on every call; beta\'s list shows its own ARNs', async () => {
    const before = await alphaState('secret-fn');
    const beta = lambdaOf(BETA);
    const arn = 'arn:aws:lambda:us-east-1:alpha:function:secret-fn';
    const zip = makeZip([{ path: 'index.js', content: 'exports.handler = async () => "beta was here"' }]);
    const notFound = { name: 'ResourceNotFoundException', $metadata: { httpStatusCode: 404 } };
    for (const FunctionName of [arn, 'alpha:function:secret-fn', 'secret-fn', `${arn}:1`]) {
      await expect(beta.send(new GetFunctionCommand({ FunctionName })), FunctionName).rejects.toMatchObject(notFound);
      await expect(beta.send(new GetFunctionConfigurationCommand({ FunctionName }))).rejects.toMatchObject(notFound);
      await expect(beta.send(new InvokeCommand({ FunctionName, Payload: Buffer.from('{}') }))).rejects.toMatchObject(notFound);
      await expect(beta.send(new InvokeCommand({ FunctionName, Payload: Buffer.from('{}'), InvocationType: 'Event' }))).rejects.toMatchObject(notFound);
      await expect(beta.send(new ListVersionsByFunctionCommand({ FunctionName }))).rejects.toMatchObject(notFound);
      await expect(beta.send(new UpdateFunctionCodeCommand({ FunctionName, ZipFile: zip }))).rejects.toMatchObject(notFound);
      await expect(beta.send(new UpdateFunctionConfigurationCommand({ FunctionName, Description: 'beta' }))).rejects.toMatchObject(notFound);
      await expect(beta.send(new PublishVersionCommand({ FunctionName }))).rejects.toMatchObject(notFound);
      await expect(beta.send(new DeleteFunctionCommand({ FunctionName }))).rejects.toMatchObject(notFound);
    }
    await expect(beta.send(new CreateFunctionCommand({ FunctionName: 'arn:aws:lambda:us-east-1:alpha:function:planted', Runtime: 'nodejs20.x', Role: 'x', Handler: 'index.handler', Code: { ZipFile: zip } }))).rejects.toMatchObject(notFound);
    // Beta's own hello by its ARN; an AWS account id (12 digits) means the caller's own tenant.
    for (const FunctionName of ['arn:aws:lambda:us-east-1:beta:function:hello', 'arn:aws:lambda:us-east-1:000000000000:function:hello']) {
      const got = await beta.send(new GetFunctionCommand({ FunctionName }));
      expect(got.Configuration?.FunctionArn).toBe('arn:aws:lambda:us-east-1:beta:function:hello');
    }
    expect((await beta.send(new ListFunctionsCommand({}))).Functions?.map((f) => f.FunctionArn)).toEqual(['arn:aws:lambda:us-east-1:beta:function:hello']);
    expect(await alphaState('secret-fn')).toEqual(before);
  });

  it('MCP: beta\'s function tools neither list nor invoke alpha\'s functions', async () => {
    const mcp = await mcpOf(BETA);
    try {
      const list = await tool(mcp.client, 'function_list', {});
      expect(list.structuredContent.functions.map((f: { name: string }) => f.name)).toEqual(['hello']);
      const out = await tool(mcp.client, 'function_invoke', { name: 'secret-fn', event: {} });
      expect([out.isError, out.structuredContent?.error?.code]).toEqual([true, 'FunctionNotFound']);
      const version = await tool(mcp.client, 'function_invoke', { name: 'secret-fn', qualifier: '1' });
      expect([version.isError, version.structuredContent?.error?.code]).toEqual([true, 'FunctionNotFound']);
    } finally {
      await mcp.close();
    }
  });

  it('alpha still owns and replays its dead letter after all that', async () => {
    const replay = await call(ALPHA, 'POST', `/api/v1/functions/secret-fn/dead-letters/${deadLetterId}/replay`);
    expect(replay.status).toBe(202);
    expect((await call(ALPHA, 'GET', '/api/v1/functions/secret-fn/dead-letters')).body.deadLetters.map((d: { id: string }) => d.id)).not.toContain(deadLetterId);
  });
});

describe('executions belong to their tenant', () => {
  it('answers another tenant\'s execution id 404 ExecutionNotFound, sync or async, ad-hoc or a function\'s', async () => {
    const sync = await call(ALPHA, 'POST', '/api/v1/executions', { code: 'exports.handler = async () => "alpha secret"', language: 'nodejs' });
    const queued = await call(ALPHA, 'POST', '/api/v1/executions', { code: 'exports.handler = async () => "alpha async"', language: 'nodejs', wait: false });
    const fnAsync = await call(ALPHA, 'POST', '/api/v1/functions/hello/invocations?type=Event', { echo: 'x' });
    for (const id of [sync.body.id, queued.body.id, fnAsync.body.id]) {
      expect(typeof id).toBe('string');
      const got = await call(BETA, 'GET', `/api/v1/executions/${id}`);
      expect([got.status, got.body.error?.code], id).toEqual([404, 'ExecutionNotFound']);
      const missing = await call(BETA, 'GET', '/api/v1/executions/00000000-0000-4000-8000-000000000000');
      // The same answer as an id that exists nowhere, but for the id itself.
      expect(got.body.error.message).toBe(missing.body.error.message.replace('00000000-0000-4000-8000-000000000000', id));
    }
    const done = await waitFor('alpha\'s async execution', async () => {
      const r = await call(ALPHA, 'GET', `/api/v1/executions/${queued.body.id}`);
      return r.body.status === 'succeeded' ? r.body : undefined;
    });
    expect(done.result).toBe('alpha async');
    // An administrator reads every tenant's.
    expect((await call(ADMIN, 'GET', `/api/v1/executions/${sync.body.id}`)).body.result).toBe('alpha secret');
  });

  it('scopes idempotency keys per tenant: beta reusing alpha\'s key neither gets alpha\'s job nor blocks alpha\'s key', async () => {
    const key = 'order-42-shared';
    const code = 'exports.handler = async (e) => ({ got: e.v })';
    const submit = (who: string, v: string) => call(who, 'POST', '/api/v1/executions', { code, language: 'nodejs', event: { v }, wait: false }, { 'Idempotency-Key': key });
    const a1 = await submit(ALPHA, 'a');
    const b1 = await submit(BETA, 'b');
    const a2 = await submit(ALPHA, 'a-again');
    const b2 = await submit(BETA, 'b-again');
    expect([a1.status, b1.status]).toEqual([202, 202]);
    expect(b1.body.id).not.toBe(a1.body.id);
    // Within a tenant the key still makes one job.
    expect([a2.body.id, b2.body.id]).toEqual([a1.body.id, b1.body.id]);
    const result = async (who: string, id: string) =>
      waitFor(`execution ${id}`, async () => {
        const r = await call(who, 'GET', `/api/v1/executions/${id}`);
        return r.body.status === 'succeeded' ? r.body.result : undefined;
      });
    expect(await result(ALPHA, a1.body.id)).toEqual({ got: 'a' });
    expect(await result(BETA, b1.body.id)).toEqual({ got: 'b' });

    // Function invocations: both tenants' hello, the same key on REST and the Lambda API.
    const ra = await call(ALPHA, 'POST', '/api/v1/functions/hello/invocations?type=Event', {}, { 'Idempotency-Key': key });
    const rb = await call(BETA, 'POST', '/api/v1/functions/hello/invocations?type=Event', {}, { 'Idempotency-Key': key });
    expect(rb.body.id).not.toBe(ra.body.id);
    const lambdaId = async (secret: string) => {
      const res = await fetch(`${k.url}/2015-03-31/functions/hello/invocations`, { method: 'POST', headers: { ...as(secret), 'x-amz-invocation-type': 'Event', 'X-Kiln-Idempotency-Key': key }, body: '{}' });
      expect(res.status).toBe(202);
      return res.headers.get('x-amzn-requestid');
    };
    expect([await lambdaId(ALPHA), await lambdaId(BETA)]).toEqual([ra.body.id, rb.body.id]);
  });
});

describe('administrators and records from before tenants', () => {
  it('an administrator reaches a tenant\'s functions with ?tenant= and by ARN, and sees the tenant', async () => {
    const list = await call(ADMIN, 'GET', '/api/v1/functions?tenant=alpha');
    expect(list.body.functions.map((f: { tenant: string; name: string }) => `${f.tenant}/${f.name}`)).toEqual(['alpha/hello', 'alpha/secret-fn']);
    // Its own tenant (default) has none of alpha's names.
    expect((await call(ADMIN, 'GET', '/api/v1/functions/hello')).status).toBe(404);
    const got = await call(ADMIN, 'GET', '/api/v1/functions/hello?tenant=beta');
    expect(got.body).toMatchObject({ tenant: 'beta', name: 'hello' });
    const ran = await call(ADMIN, 'POST', '/api/v1/functions/hello/invocations?tenant=beta', { echo: 'admin' });
    expect(ran.body.result).toMatchObject({ tenant: 'beta', echo: 'admin' });
    const viaArn = await lambdaOf(ADMIN).send(new InvokeCommand({ FunctionName: 'arn:aws:lambda:us-east-1:alpha:function:hello', Payload: Buffer.from('{"echo":"arn"}') }));
    expect(decode(viaArn.Payload)).toMatchObject({ tenant: 'alpha', echo: 'arn' });
    // An invocation of alpha's function is alpha's: alpha reads its record.
    const queued = await call(ADMIN, 'POST', '/api/v1/functions/hello/invocations?tenant=alpha&type=Event', {});
    expect((await call(ALPHA, 'GET', `/api/v1/executions/${queued.body.id}`)).status).toBe(200);
    expect((await call(BETA, 'GET', `/api/v1/executions/${queued.body.id}`)).status).toBe(404);
    // Deploying for a tenant, and taking it away again.
    const made = await call(ADMIN, 'POST', '/api/v1/functions?tenant=beta', { name: 'from-admin', runtime: 'nodejs20.x', code: { source: 'exports.handler = async () => "deployed for beta"' } });
    expect(made.body).toMatchObject({ tenant: 'beta', name: 'from-admin' });
    expect((await call(BETA, 'POST', '/api/v1/functions/from-admin/invocations', {})).body.result).toBe('deployed for beta');
    expect((await call(ALPHA, 'GET', '/api/v1/functions/from-admin')).status).toBe(404);
    expect((await call(ADMIN, 'DELETE', '/api/v1/functions/from-admin?tenant=beta')).status).toBe(204);
    expect((await call(BETA, 'GET', '/api/v1/functions/from-admin')).status).toBe(404);
  });

  it('reads a function stored before tenants (no tenant in its key or record) as the default tenant\'s', async () => {
    const files = [{ path: 'index.js', content: Buffer.from('exports.handler = async () => "legacy"').toString('base64'), mode: 0o644 }];
    const record = {
      name: 'legacy',
      version: '$LATEST',
      runtime: 'nodejs20.x',
      handler: 'index.handler',
      template: 'nodejs',
      memorySize: 128,
      timeout: 3,
      environment: {},
      description: '',
      maxRetryAttempts: 0,
      codeSha256: 'bGVnYWN5',
      codeSize: 38,
      codeBlob: 'code/legacy/6c6567616379',
      lastModified: new Date().toISOString(),
      revisionId: '11111111-1111-4111-8111-111111111111',
    };
    // In the store this Kiln keeps blobs in (disk, the default), under the key the record names.
    mkdirSync(join(k.dataDir, 'blobs', 'code', 'legacy'), { recursive: true });
    writeFileSync(join(k.dataDir, 'blobs', record.codeBlob), JSON.stringify(files));
    await k.redis.set(`${k.prefix}:fn:legacy`, JSON.stringify(record));
    await k.redis.zadd(`${k.prefix}:fns`, 0, 'legacy');
    const got = await call(ADMIN, 'GET', '/api/v1/functions/legacy');
    expect(got.body).toMatchObject({ tenant: 'default', name: 'legacy', revisionId: record.revisionId });
    expect((await call(ADMIN, 'POST', '/api/v1/functions/legacy/invocations', {})).body.result).toBe('legacy');
    expect((await call(ADMIN, 'GET', '/api/v1/functions')).body.functions.map((f: { name: string }) => f.name)).toEqual(['legacy']);
    expect((await lambdaOf(ADMIN).send(new GetFunctionCommand({ FunctionName: 'legacy' }))).Configuration?.FunctionArn).toBe('arn:aws:lambda:us-east-1:default:function:legacy');
    expect((await call(ALPHA, 'GET', '/api/v1/functions/legacy')).status).toBe(404);
    expect((await call(ALPHA, 'GET', '/api/v1/functions/legacy?tenant=default')).status).toBe(404);
  });
});
