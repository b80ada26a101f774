import { createHash, createHmac, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateFunctionCommand,
  CreateFunctionUrlConfigCommand,
  DeleteFunctionCommand,
  DeleteFunctionUrlConfigCommand,
  GetFunctionUrlConfigCommand,
  InvalidParameterValueException,
  LambdaClient,
  ListFunctionUrlConfigsCommand,
  ResourceConflictException,
  ResourceNotFoundException,
  UpdateFunctionUrlConfigCommand,
} from '@aws-sdk/client-lambda';
import { SignatureV4 } from '@smithy/signature-v4';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

// Function URLs: the config API with the AWS SDK, and the URLs themselves over plain HTTP as a
// browser or curl sends it. Two tenants (alpha, beta) and an administrator.
const ALPHA = 'alpha-url-key-0123456789abcdef';
const BETA = 'beta-url-key-0123456789abcdef0';
const ADMIN = 'admin-url-key-0123456789abcdef';

let k: TestKiln;
const clients: LambdaClient[] = [];
const lambdaWith = (secretAccessKey: string, accessKeyId = 'any-id') => {
  const client = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 });
  clients.push(client);
  return client;
};
let alpha: LambdaClient;
let beta: LambdaClient;
let admin: LambdaClient;

beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: `alpha:${ALPHA}, beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN } });
  alpha = lambdaWith(ALPHA);
  beta = lambdaWith(BETA);
  admin = lambdaWith(ADMIN);
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await k?.stop();
});

/** An HTTP app as a bare handler: what it returns depends on the path. */
const HANDLER = `exports.handler = async (event) => {
  switch (event.rawPath) {
    case '/echo': return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) };
    case '/fail': throw new Error('boom');
    case '/plain': return { hello: 'world', n: [1, 2] };
    case '/string': return 'just text';
    case '/binary': return { statusCode: 201, headers: { 'content-type': 'application/octet-stream', 'x-custom': 'yes', 'access-control-allow-origin': 'https://evil.example' }, cookies: ['a=1; Path=/', 'b=2; HttpOnly'], body: event.body, isBase64Encoded: event.isBase64Encoded };
    default: return { statusCode: 404, body: 'no route ' + event.rawPath };
  }
};`;

async function createFn(client: LambdaClient, name: string) {
  await client.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: HANDLER }]) } }));
}

const bytes = (d: string | ArrayBuffer | ArrayBufferView): Buffer =>
  typeof d === 'string' ? Buffer.from(d) : ArrayBuffer.isView(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d);

/** The SHA-256 the SDK's signer wants, from Node's crypto. */
class Sha256 {
  private readonly h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.h.digest()));
  }
}

/** Headers for a SigV4-signed request (service lambda), as an AWS client signs a function URL call. */
async function signed(url: string, secretAccessKey: string, method = 'GET', body?: string, accessKeyId = 'any-id', service = 'lambda'): Promise<Record<string, string>> {
  const u = new URL(url);
  const signer = new SignatureV4({ service, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey }, sha256: Sha256 });
  const query: Record<string, string> = {};
  u.searchParams.forEach((v, key) => (query[key] = v));
  const req = await signer.sign({ method, protocol: u.protocol, hostname: u.hostname, port: Number(u.port), path: u.pathname, query, headers: { host: u.host, ...(body ? { 'content-type': 'application/json' } : {}) }, body });
  // fetch sends its own Host (the same value); the rest is what the signer added.
  return Object.fromEntries(Object.entries(req.headers).filter(([name]) => name !== 'host'));
}

/** A raw request with any Host header (fetch will not send one of its own choosing). */
function rawGet(path: string, host: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const u = new URL(k.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET', headers: { host, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const idOf = (url: string | undefined) => /\/lambda-url\/([a-z0-9]{32})\/$/.exec(url ?? '')?.[1] ?? '';

describe('function URL configs with the AWS SDK', () => {
  it('creates, gets, updates, lists and deletes a URL config, with Lambda\'s errors', async () => {
    await createFn(alpha, 'url-crud');
    const made = await alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'NONE', Cors: { AllowOrigins: ['https://app.example'], MaxAge: 60 } }));
    expect(made.$metadata.httpStatusCode).toBe(201);
    expect(made.FunctionUrl).toMatch(new RegExp(`^${k.url}/lambda-url/[a-z0-9]{32}/$`));
    expect(made.FunctionArn).toMatch(/^arn:aws:lambda:[a-z0-9-]+:alpha:function:url-crud$/);
    expect(made.AuthType).toBe('NONE');
    expect(made.InvokeMode).toBe('BUFFERED');
    expect(made.Cors).toEqual({ AllowOrigins: ['https://app.example'], MaxAge: 60 });
    expect(Date.parse(made.CreationTime ?? '')).toBeGreaterThan(Date.now() - 60_000);

    await expect(alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'NONE' }))).rejects.toBeInstanceOf(ResourceConflictException);
    const got = await alpha.send(new GetFunctionUrlConfigCommand({ FunctionName: 'url-crud' }));
    expect(got.FunctionUrl).toBe(made.FunctionUrl);
    expect(got.LastModifiedTime).toBe(made.CreationTime);

    const updated = await alpha.send(new UpdateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'AWS_IAM', Cors: { AllowOrigins: ['*'], AllowMethods: ['GET', 'POST'] } }));
    expect(updated.AuthType).toBe('AWS_IAM');
    expect(updated.Cors).toEqual({ AllowOrigins: ['*'], AllowMethods: ['GET', 'POST'] });
    expect(updated.FunctionUrl).toBe(made.FunctionUrl);
    expect(updated.CreationTime).toBe(made.CreationTime);
    // Fields left out keep their value.
    expect((await alpha.send(new UpdateFunctionUrlConfigCommand({ FunctionName: 'url-crud' }))).AuthType).toBe('AWS_IAM');
    // An empty Cors removes the CORS config.
    expect((await alpha.send(new UpdateFunctionUrlConfigCommand({ FunctionName: 'url-crud', Cors: {} }))).Cors).toBeUndefined();

    const listed = await alpha.send(new ListFunctionUrlConfigsCommand({ FunctionName: 'url-crud', MaxItems: 1 }));
    expect(listed.FunctionUrlConfigs?.map((c) => c.FunctionUrl)).toEqual([made.FunctionUrl]);
    expect(listed.NextMarker).toBeUndefined();

    await alpha.send(new DeleteFunctionUrlConfigCommand({ FunctionName: 'url-crud' }));
    await expect(alpha.send(new GetFunctionUrlConfigCommand({ FunctionName: 'url-crud' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new DeleteFunctionUrlConfigCommand({ FunctionName: 'url-crud' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new UpdateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'NONE' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    expect((await alpha.send(new ListFunctionUrlConfigsCommand({ FunctionName: 'url-crud' }))).FunctionUrlConfigs).toEqual([]);
    // The old URL answers 404 once its config is gone.
    expect((await fetch(made.FunctionUrl ?? '')).status).toBe(404);
    await expect(alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'no-such-fn', AuthType: 'NONE' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(alpha.send(new ListFunctionUrlConfigsCommand({ FunctionName: 'no-such-fn' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('refuses what Kiln or Lambda does not accept, naming it', async () => {
    await expect(alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'NONE', InvokeMode: 'STREAMING' as never }))).rejects.toMatchObject({
      name: 'ValidationException',
      message: expect.stringMatching(/InvokeMode must be BUFFERED or RESPONSE_STREAM/),
      $metadata: { httpStatusCode: 400 },
    });
    await expect(alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'OPEN' as never }))).rejects.toMatchObject({ name: 'ValidationException' });
    await expect(alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'NONE', Qualifier: '1' }))).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'NONE', Cors: { MaxAge: 100000 } }))).rejects.toMatchObject({ name: 'InvalidParameterValueException', message: expect.stringMatching(/MaxAge/) });
    await expect(alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-crud', AuthType: 'NONE', Cors: { AllowMethods: ['TRACE'] } }))).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(alpha.send(new ListFunctionUrlConfigsCommand({ FunctionName: 'url-crud', MaxItems: 51 }))).rejects.toBeInstanceOf(InvalidParameterValueException);
  });

  it('belongs to the function\'s tenant: another tenant finds nothing, an administrator reaches it by ARN', async () => {
    await createFn(alpha, 'url-owned');
    const made = await alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-owned', AuthType: 'NONE' }));
    const arn = 'arn:aws:lambda:us-east-1:alpha:function:url-owned';
    for (const name of ['url-owned', arn]) {
      await expect(beta.send(new GetFunctionUrlConfigCommand({ FunctionName: name }))).rejects.toBeInstanceOf(ResourceNotFoundException);
      await expect(beta.send(new UpdateFunctionUrlConfigCommand({ FunctionName: name, AuthType: 'AWS_IAM' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
      await expect(beta.send(new DeleteFunctionUrlConfigCommand({ FunctionName: name }))).rejects.toBeInstanceOf(ResourceNotFoundException);
      await expect(beta.send(new ListFunctionUrlConfigsCommand({ FunctionName: name }))).rejects.toBeInstanceOf(ResourceNotFoundException);
      await expect(beta.send(new CreateFunctionUrlConfigCommand({ FunctionName: name, AuthType: 'NONE' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    }
    // Beta's own function of the same name is another function with its own URL.
    await createFn(beta, 'url-owned');
    const betas = await beta.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-owned', AuthType: 'NONE' }));
    expect(betas.FunctionUrl).not.toBe(made.FunctionUrl);
    expect(betas.FunctionArn).toMatch(/^arn:aws:lambda:[a-z0-9-]+:beta:function:url-owned$/);
    expect((await admin.send(new GetFunctionUrlConfigCommand({ FunctionName: arn }))).FunctionUrl).toBe(made.FunctionUrl);
    expect((await alpha.send(new GetFunctionUrlConfigCommand({ FunctionName: 'url-owned' }))).AuthType).toBe('NONE');
    // Without a key the config API is closed like the rest of the Lambda API.
    const anonymous = await fetch(`${k.url}/2021-10-31/functions/url-owned/url`);
    expect([anonymous.status, anonymous.headers.get('x-amzn-errortype')]).toEqual([401, 'UnrecognizedClientException']);
    await beta.send(new DeleteFunctionCommand({ FunctionName: 'url-owned' }));
  });
});

describe('serving a NONE function URL', () => {
  let url = '';
  beforeAll(async () => {
    await createFn(alpha, 'url-app');
    const made = await alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-app', AuthType: 'NONE', Cors: { AllowOrigins: ['https://app.example'], AllowMethods: ['GET', 'POST'], AllowHeaders: ['x-token'], ExposeHeaders: ['x-custom'], AllowCredentials: true, MaxAge: 300 } }));
    url = (made.FunctionUrl ?? '').replace(/\/$/, '');
  });

  it('maps the request to the payload format 2.0 event', async () => {
    const res = await fetch(`${url}/echo?a=1&a=2&b=x%20y&c`, { method: 'POST', headers: { 'content-type': 'text/plain', cookie: 'sid=abc; theme=dark', 'x-multi': 'one', 'user-agent': 'url-test/1' }, body: 'hello body' });
    expect(res.status).toBe(200);
    const event = (await res.json()) as any;
    expect(event).toMatchObject({
      version: '2.0',
      routeKey: '$default',
      rawPath: '/echo',
      rawQueryString: 'a=1&a=2&b=x%20y&c',
      cookies: ['sid=abc', 'theme=dark'],
      queryStringParameters: { a: '1,2', b: 'x y', c: '' },
      body: 'hello body',
      isBase64Encoded: false,
      requestContext: {
        accountId: 'alpha',
        apiId: idOf(`${url}/`),
        routeKey: '$default',
        stage: '$default',
        http: { method: 'POST', path: '/echo', protocol: 'HTTP/1.1', userAgent: 'url-test/1' },
      },
    });
    expect(event.headers['x-multi']).toBe('one');
    expect(event.headers['content-type']).toBe('text/plain');
    expect(event.headers.cookie).toBeUndefined();
    expect(Object.keys(event.headers).every((h: string) => h === h.toLowerCase())).toBe(true);
    expect(event.requestContext.http.sourceIp).toBe('127.0.0.1');
    expect(event.requestContext.time).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    expect(Math.abs(event.requestContext.timeEpoch - Date.now())).toBeLessThan(60_000);
    expect(event.requestContext.requestId).toMatch(/^[0-9a-f-]{36}$/);
    // Nothing absent is sent as empty: no query, cookies or body.
    const bare = (await (await fetch(`${url}/echo`)).json()) as any;
    expect(bare.queryStringParameters).toBeUndefined();
    expect(bare.cookies).toBeUndefined();
    expect(bare.body).toBeUndefined();
    expect(bare.isBase64Encoded).toBe(false);
    // The URL without a path is '/'.
    expect((await (await fetch(url)).text())).toBe('no route /');
  });

  it('round-trips a binary body as base64 and maps status, headers and cookies back', async () => {
    const bytes = randomBytes(5000);
    const res = await fetch(`${url}/binary`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes });
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('x-custom')).toBe('yes');
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
    expect(res.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
  });

  it('serves the path form, which shares Kiln\'s origin, as a sandboxed (opaque-origin) page; the Host form as it is', async () => {
    const res = await fetch(`${url}/binary`, { method: 'POST', headers: { 'content-type': 'text/html' }, body: '<script>fetch("/api/v1/executions")</script>' });
    expect(res.headers.get('content-security-policy')).toMatch(/^sandbox allow-scripts/);
    expect(res.headers.get('content-security-policy')).not.toMatch(/allow-same-origin/);
    // What such a page's requests carry: Origin null, which the API refuses.
    expect((await fetch(`${k.url}/api/v1/functions`, { headers: { origin: 'null', authorization: `Bearer ${ALPHA}` } })).status).toBe(403);
    const byHost = await rawGet('/plain', `${idOf(`${url}/`)}.lambda-url.localhost`);
    expect(byHost.headers['content-security-policy']).toBeUndefined();
  });

  it('sends a result without statusCode as 200 application/json, and a handler error as 502', async () => {
    const plain = await fetch(`${url}/plain`);
    expect([plain.status, plain.headers.get('content-type'), await plain.text()]).toEqual([200, 'application/json', '{"hello":"world","n":[1,2]}']);
    const text = await fetch(`${url}/string`);
    expect([text.status, await text.text()]).toEqual([200, 'just text']);
    const fail = await fetch(`${url}/fail`);
    expect(fail.status).toBe(502);
    expect(await fail.json()).toEqual({ Message: 'Internal Server Error' });
    const missing = await fetch(`${url}/nowhere`);
    expect([missing.status, await missing.text()]).toEqual([404, 'no route /nowhere']);
  });

  it('answers CORS preflights from its config and puts its CORS headers on responses', async () => {
    const pre = await fetch(`${url}/echo`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-token' } });
    expect(pre.status).toBe(200);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET,POST');
    expect(pre.headers.get('access-control-allow-headers')).toBe('x-token');
    expect(pre.headers.get('access-control-allow-credentials')).toBe('true');
    expect(pre.headers.get('access-control-max-age')).toBe('300');
    // Another origin, or a method the config does not allow: no CORS headers, so the browser stops.
    for (const [origin, method] of [['https://evil.example', 'POST'], ['https://app.example', 'DELETE']]) {
      const refused = await fetch(`${url}/echo`, { method: 'OPTIONS', headers: { origin: origin as string, 'access-control-request-method': method as string } });
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
    }
    // The actual request: the config's headers replace the handler's own.
    const res = await fetch(`${url}/binary`, { method: 'POST', headers: { origin: 'https://app.example', 'content-type': 'text/plain' }, body: 'x' });
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-expose-headers')).toBe('x-custom');
    expect(res.headers.get('vary')).toBe('Origin');
    const foreign = await fetch(`${url}/binary`, { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'text/plain' }, body: 'x' });
    // A foreign page's request still runs (a NONE URL is public), but its page cannot read the answer.
    expect(foreign.status).toBe(201);
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('is served by Host <id>.lambda-url.<any domain> too, while the API still refuses foreign Origins and Hosts', async () => {
    const id = idOf(`${url}/`);
    const byHost = await rawGet('/plain', `${id}.lambda-url.functions.example:8080`);
    expect([byHost.status, byHost.body]).toEqual([200, '{"hello":"world","n":[1,2]}']);
    const echoed = JSON.parse((await rawGet('/echo?x=1', `${id}.lambda-url.functions.example`)).body);
    expect(echoed.rawPath).toBe('/echo');
    expect(echoed.requestContext.domainName).toBe(`${id}.lambda-url.functions.example`);
    expect(echoed.requestContext.domainPrefix).toBe(id);
    // The exemption is the function URL's alone: the API under a foreign Host or Origin is refused as before.
    expect((await rawGet('/api/v1/functions', 'evil.example')).status).toBe(403);
    expect((await rawGet('/api/v1/functions', `${'a'.repeat(32)}x.lambda-url.example`)).status).toBe(403);
    const api = await fetch(`${k.url}/api/v1/functions`, { headers: { origin: 'https://evil.example', authorization: `Bearer ${ALPHA}` } });
    expect(api.status).toBe(403);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe('OriginNotAllowed');
    const lambdaApi = await fetch(`${k.url}/2021-10-31/functions/url-app/url`, { headers: { origin: 'https://evil.example', authorization: `Bearer ${ALPHA}` } });
    expect(lambdaApi.status).toBe(403);
    // An id nobody made, by path and by Host: 404, never the API.
    expect((await fetch(`${k.url}/lambda-url/${'b'.repeat(32)}/`)).status).toBe(404);
    expect((await fetch(`${k.url}/lambda-url/not-an-id/api/v1/functions`)).status).toBe(404);
    expect((await rawGet('/api/v1/functions', `${'c'.repeat(32)}.lambda-url.example`)).status).toBe(404);
  });

  it('stops serving when its function is deleted, and a new function of the same name does not inherit it', async () => {
    await createFn(alpha, 'url-gone');
    const made = await alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-gone', AuthType: 'NONE' }));
    expect((await fetch(`${made.FunctionUrl}plain`)).status).toBe(200);
    await alpha.send(new DeleteFunctionCommand({ FunctionName: 'url-gone' }));
    expect((await fetch(`${made.FunctionUrl}plain`)).status).toBe(404);
    await createFn(alpha, 'url-gone');
    expect((await fetch(`${made.FunctionUrl}plain`)).status).toBe(404);
    await expect(alpha.send(new GetFunctionUrlConfigCommand({ FunctionName: 'url-gone' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await alpha.send(new DeleteFunctionCommand({ FunctionName: 'url-gone' }));
  });
});

describe('the owner\'s request rate', () => {
  it('applies to its NONE URL whoever calls, and not to another tenant\'s URL', async () => {
    const as = { authorization: `Bearer ${ADMIN}` };
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'slow', quotas: { requestsPerSecond: 3 } }, as)).status).toBe(201);
    const key = (await k.call('POST', '/api/v1/admin/tenants/slow/keys', {}, as)).body as { key: string; keyId: string };
    const slow = lambdaWith(key.key, key.keyId);
    await createFn(slow, 'url-rate');
    const made = await slow.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-rate', AuthType: 'NONE' }));
    await new Promise((r) => setTimeout(r, 1_200));
    const burst = await Promise.all(Array.from({ length: 12 }, () => fetch(`${made.FunctionUrl}plain`)));
    const refused = burst.filter((r) => r.status === 429);
    expect(burst.filter((r) => r.status === 200).length).toBeLessThanOrEqual(4);
    expect(refused.length).toBeGreaterThanOrEqual(8);
    expect(refused[0]?.headers.get('retry-after')).toBe('1');
    expect(await refused[0]?.json()).toEqual({ Message: 'Rate Exceeded.' });
    const alphas = (await alpha.send(new GetFunctionUrlConfigCommand({ FunctionName: 'url-app' }))).FunctionUrl;
    expect((await fetch(`${alphas}plain`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_200));
    expect((await fetch(`${made.FunctionUrl}plain`)).status).toBe(200);
  });
});

describe('serving an AWS_IAM function URL', () => {
  it('wants SigV4 by a key of the function\'s tenant with the invoke scope, or an administrator\'s', async () => {
    await createFn(alpha, 'url-iam');
    const made = await alpha.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-iam', AuthType: 'AWS_IAM' }));
    const target = `${made.FunctionUrl}echo?q=1`;
    const unsigned = await fetch(target);
    expect(unsigned.status).toBe(403);
    // An API key is not a signature.
    expect((await fetch(target, { headers: { authorization: `Bearer ${ALPHA}` } })).status).toBe(403);
    const ok = await fetch(target, { headers: await signed(target, ALPHA) });
    expect(ok.status).toBe(200);
    const event = (await ok.json()) as any;
    expect(event.requestContext.authorizer.iam.accountId).toBe('alpha');
    expect(event.queryStringParameters).toEqual({ q: '1' });
    const body = '{"signed":true}';
    const post = await fetch(target, { method: 'POST', body, headers: await signed(target, ALPHA, 'POST', body) });
    expect(((await post.json()) as { body: string }).body).toBe(body);
    // A body changed after signing is refused.
    const tampered = await fetch(target, { method: 'POST', body: '{"signed":false}', headers: await signed(target, ALPHA, 'POST', body) });
    expect(tampered.status).toBe(403);
    expect((await fetch(target, { headers: await signed(target, BETA) })).status).toBe(403);
    expect((await fetch(target, { headers: await signed(target, 'not-a-key-0123456789abcdef') })).status).toBe(403);
    expect((await fetch(target, { headers: await signed(target, ADMIN) })).status).toBe(200);
    // The right key, but a signature made for another service.
    expect((await fetch(target, { headers: await signed(target, ALPHA, 'GET', undefined, 'any-id', 's3') })).status).toBe(403);

    // A key of the tenant with only the read scope may not invoke through the URL.
    const tenant = await k.call('POST', '/api/v1/admin/tenants', { id: 'gamma' }, { authorization: `Bearer ${ADMIN}` });
    expect(tenant.status).toBe(201);
    const full = (await k.call('POST', '/api/v1/admin/tenants/gamma/keys', {}, { authorization: `Bearer ${ADMIN}` })).body as { key: string; keyId: string };
    const reader = (await k.call('POST', '/api/v1/admin/tenants/gamma/keys', { scopes: ['read'] }, { authorization: `Bearer ${ADMIN}` })).body as { key: string; keyId: string };
    const gamma = lambdaWith(full.key, full.keyId);
    await createFn(gamma, 'url-scoped');
    const scoped = await gamma.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'url-scoped', AuthType: 'AWS_IAM' }));
    const t2 = `${scoped.FunctionUrl}plain`;
    expect((await fetch(t2, { headers: await signed(t2, reader.key, 'GET', undefined, reader.keyId) })).status).toBe(403);
    expect((await fetch(t2, { headers: await signed(t2, full.key, 'GET', undefined, full.keyId) })).status).toBe(200);
    // The read key may read the config, not change it.
    const readerClient = lambdaWith(reader.key, reader.keyId);
    expect((await readerClient.send(new GetFunctionUrlConfigCommand({ FunctionName: 'url-scoped' }))).AuthType).toBe('AWS_IAM');
    await expect(readerClient.send(new UpdateFunctionUrlConfigCommand({ FunctionName: 'url-scoped', AuthType: 'NONE' }))).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });
});
