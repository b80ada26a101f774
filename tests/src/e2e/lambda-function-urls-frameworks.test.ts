import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateFunctionCommand, CreateFunctionUrlConfigCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { packageFiles } from '../support/node-packages.js';
import { makeZip } from '../support/zip.js';

// HTTP frameworks' Lambda adapters behind a function URL, unchanged: serverless-http + express and
// hono/aws-lambda. Each request's event (logged by a thin wrapper) is then given to the same
// handler loaded here in Node, and Kiln's HTTP answer must be exactly what that handler returned.

const PATH_FORM_CSP = 'sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads';
const ROOT_MODULES = fileURLToPath(new URL('../../../node_modules', import.meta.url));

/** Logs the event it got (one line the test reads back from the execution's log), then runs the app. */
const WRAPPER = `const { handler } = require('./app.js');
exports.handler = async (event, context) => {
  console.log('EVENT ' + JSON.stringify(event));
  return handler(event, context);
};`;

const EXPRESS_APP = `const serverless = require('serverless-http');
const express = require('express');
const app = express();
app.use(express.json());
app.get('/hello', (req, res) => {
  res.set('x-app', 'express').cookie('seen', '1', { path: '/' }).cookie('theme', 'dark').json({ query: req.query, path: req.path, cookies: req.get('cookie') ?? null, ua: req.get('user-agent') });
});
app.post('/items', (req, res) => res.status(201).json({ got: req.body, type: req.get('content-type') }));
app.get('/bytes', (req, res) => res.type('application/octet-stream').send(Buffer.from([0, 1, 2, 253, 254, 255])));
app.put('/upload', express.raw({ type: '*/*' }), (req, res) => res.type('text/plain').send('length ' + req.body.length + ' first ' + req.body[0] + ' last ' + req.body[req.body.length - 1]));
exports.handler = serverless(app, { binary: ['application/octet-stream'] });`;

const HONO_APP = `const { Hono } = require('hono');
const { handle } = require('hono/aws-lambda');
const app = new Hono();
app.get('/hello', (c) => {
  c.header('x-app', 'hono');
  return c.json({ q: c.req.queries('q') ?? null, path: c.req.path, cookie: c.req.header('cookie') ?? null });
});
app.post('/items', async (c) => c.json({ got: await c.req.json() }, 201));
app.get('/bytes', (c) => c.body(new Uint8Array([0, 1, 2, 253, 254, 255]), 200, { 'content-type': 'application/octet-stream' }));
app.get('/redirect', (c) => c.redirect('/hello', 302));
exports.handler = handle(app);`;

/** The same wrapper as an ES module, for handlers written as ES modules (middy is ESM-only). */
const ESM_WRAPPER = `import { handler as app } from './app.mjs';
export const handler = async (event, context) => {
  console.log('EVENT ' + JSON.stringify(event));
  return app(event, context);
};`;

// middy with a body parser, and Powertools' logger with its middy middleware: the JSON log line
// it writes (with the Lambda context it injects) shows in the invocation's log.
const MIDDY_APP = `import middy from '@middy/core';
import httpJsonBodyParser from '@middy/http-json-body-parser';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
const logger = new Logger({ serviceName: 'orders' });
const base = async (event) => {
  logger.info('order received', { orderId: event.body.id });
  return { statusCode: 201, headers: { 'content-type': 'application/json', 'x-app': 'middy' }, cookies: ['order=' + event.body.id], body: JSON.stringify({ got: event.body, path: event.rawPath, query: event.queryStringParameters ?? null }) };
};
export const handler = middy(base).use(injectLambdaContext(logger)).use(httpJsonBodyParser());`;

let k: TestKiln;
let lambda: LambdaClient;
const dirs: string[] = [];
beforeAll(async () => {
  k = await startTestKiln();
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
});
afterAll(async () => {
  lambda?.destroy();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await k?.stop();
});

type Handler = (event: unknown, context: unknown) => Promise<Record<string, unknown>>;

/** Deploys app.js with the packages it needs behind a NONE URL; returns the URL and the same handler loaded in this process. */
async function deploy(name: string, app: string, packages: ZipInputFiles, esm = false): Promise<{ url: string; local: Handler; zipBytes: number }> {
  const appFile = esm ? 'app.mjs' : 'app.js';
  const zip = makeZip([{ path: esm ? 'index.mjs' : 'index.js', content: esm ? ESM_WRAPPER : WRAPPER }, { path: appFile, content: app }, ...packages]);
  await lambda.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: zip }, Timeout: 10, MemorySize: 256 }));
  const { FunctionUrl } = await lambda.send(new CreateFunctionUrlConfigCommand({ FunctionName: name, AuthType: 'NONE' }));
  const dir = mkdtempSync(join(tmpdir(), 'kiln-url-app-'));
  dirs.push(dir);
  writeFileSync(join(dir, appFile), app);
  symlinkSync(ROOT_MODULES, join(dir, 'node_modules'));
  const { handler } = (esm ? await import(pathToFileURL(join(dir, appFile)).href) : createRequire(join(dir, appFile))('./app.js')) as { handler: Handler };
  return { url: (FunctionUrl ?? '').replace(/\/$/, ''), local: handler, zipBytes: zip.length };
}
type ZipInputFiles = Parameters<typeof makeZip>[0];

/**
 * Sends one request to the URL, reads the event the handler got from the execution's log, calls
 * the local handler with it, and checks Kiln's answer against that result byte for byte.
 */
async function compare(local: Handler, url: string, init: RequestInit = {}): Promise<{ res: Response; result: Record<string, unknown>; body: Buffer }> {
  const res = await fetch(url, { redirect: 'manual', ...init });
  const body = Buffer.from(await res.arrayBuffer());
  const id = res.headers.get('x-amzn-requestid');
  const record = await k.call('GET', `/api/v1/executions/${id}`);
  const line = (record.body.logs as string).split('\n').find((l) => l.includes('EVENT {'));
  const event = JSON.parse(line?.slice(line.indexOf('EVENT ') + 6) ?? 'null');
  expect(event?.version).toBe('2.0');
  const result = await local(event, { awsRequestId: event.requestContext.requestId, functionName: 'local', getRemainingTimeInMillis: () => 10_000 });
  // The handler's result is the same value in the sandbox and here.
  expect(record.body.result).toEqual(JSON.parse(JSON.stringify(result)));
  expect(res.status).toBe(result.statusCode);
  const expected = result.body === undefined ? Buffer.alloc(0) : result.isBase64Encoded ? Buffer.from(result.body as string, 'base64') : Buffer.from(result.body as string);
  expect(body.equals(expected)).toBe(true);
  const headers = { ...(result.headers as Record<string, string>) };
  for (const [name, value] of Object.entries(headers)) {
    if (['content-length', 'transfer-encoding', 'connection'].includes(name.toLowerCase())) continue;
    // The path form adds its sandbox policy after the handler's own (express's 404 sends one).
    if (name.toLowerCase() === 'content-security-policy') expect(res.headers.get(name)).toBe(`${value}, ${PATH_FORM_CSP}`);
    else expect(res.headers.get(name), name).toBe(String(value));
  }
  const cookies = (result.cookies as string[] | undefined) ?? (result.multiValueHeaders as Record<string, string[]> | undefined)?.['set-cookie'] ?? [];
  expect(res.headers.getSetCookie()).toEqual(cookies);
  return { res, result, body };
}

describe('framework handlers behind a function URL, byte for byte as in Node', () => {
  it('middy with Powertools logger (ES modules)', async () => {
    const files = packageFiles(['@middy/core', '@middy/http-json-body-parser', '@aws-lambda-powertools/logger']);
    const { url, local } = await deploy('url-middy', MIDDY_APP, files, true);
    const posted = await compare(local, `${url}/orders?src=test`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":"o-17","qty":2}' });
    expect([posted.res.status, JSON.parse(posted.body.toString())]).toEqual([201, { got: { id: 'o-17', qty: 2 }, path: '/orders', query: { src: 'test' } }]);
    expect(posted.res.headers.get('x-app')).toBe('middy');
    // Powertools' structured line, with the Lambda context middy handed it inside the sandbox.
    const record = await k.call('GET', `/api/v1/executions/${posted.res.headers.get('x-amzn-requestid')}`);
    const line = (record.body.logs as string).split('\n').find((l) => l.includes('"order received"'));
    const logged = JSON.parse(line?.slice(line.indexOf('{')) ?? 'null');
    expect(logged).toMatchObject({ level: 'INFO', message: 'order received', service: 'orders', orderId: 'o-17', function_name: 'url-middy', cold_start: expect.any(Boolean) });
    // middy's body parser refuses a body that is not JSON: an error the URL reports as 500, as Lambda's does.
    const bad = await fetch(`${url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(bad.status).toBeGreaterThanOrEqual(400);
  });

  it('serverless-http + express', async () => {
    const files = packageFiles(['serverless-http', 'express']);
    const { url, local, zipBytes } = await deploy('url-express', EXPRESS_APP, files);
    // How big bundling express is (printed for the README's sake).
    console.log(`express + serverless-http zip: ${files.length} files, ${zipBytes} bytes`);
    const hello = await compare(local, `${url}/hello?x=1&y=a%20b`, { headers: { cookie: 'sid=abc; theme=light', 'user-agent': 'fw-test' } });
    expect(JSON.parse(hello.body.toString())).toEqual({ query: { x: '1', y: 'a b' }, path: '/hello', cookies: 'sid=abc; theme=light', ua: 'fw-test' });
    expect(hello.res.headers.getSetCookie()).toEqual(['seen=1; Path=/', 'theme=dark; Path=/']);
    const posted = await compare(local, `${url}/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"widget","n":3}' });
    expect([posted.res.status, JSON.parse(posted.body.toString()).got]).toEqual([201, { name: 'widget', n: 3 }]);
    const bytes = await compare(local, `${url}/bytes`);
    expect([...bytes.body]).toEqual([0, 1, 2, 253, 254, 255]);
    const upload = await compare(local, `${url}/upload`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([7, 0, 255, 9]) });
    expect(upload.body.toString()).toBe('length 4 first 7 last 9');
    const missing = await compare(local, `${url}/nope`);
    expect(missing.res.status).toBe(404);
  });

  it('hono/aws-lambda', async () => {
    const files = packageFiles(['hono'], { hono: (rel) => rel === 'package.json' || rel.startsWith('dist/cjs/') });
    const { url, local, zipBytes } = await deploy('url-hono', HONO_APP, files);
    console.log(`hono zip: ${files.length} files, ${zipBytes} bytes`);
    const hello = await compare(local, `${url}/hello?q=1&q=2`, { headers: { cookie: 'a=1; b=2' } });
    expect(JSON.parse(hello.body.toString())).toEqual({ q: ['1', '2'], path: '/hello', cookie: 'a=1; b=2' });
    expect(hello.res.headers.get('x-app')).toBe('hono');
    const posted = await compare(local, `${url}/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"widget"}' });
    expect(posted.res.status).toBe(201);
    const bytes = await compare(local, `${url}/bytes`);
    expect([...bytes.body]).toEqual([0, 1, 2, 253, 254, 255]);
    const redirect = await compare(local, `${url}/redirect`);
    expect([redirect.res.status, redirect.res.headers.get('location')]).toEqual([302, '/hello']);
  });
});
