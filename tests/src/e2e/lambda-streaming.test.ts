import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateFunctionCommand,
  CreateFunctionUrlConfigCommand,
  DeleteFunctionCommand,
  InvokeWithResponseStreamCommand,
  LambdaClient,
  ResourceNotFoundException,
  UpdateFunctionUrlConfigCommand,
  type InvokeWithResponseStreamResponseEvent,
} from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';
import { GATE_JS, openGate as openGateIn } from '../support/gate.js';

/**
 * Response streaming through the official SDK's InvokeWithResponseStream and through a function
 * URL in RESPONSE_STREAM mode, against real sandboxes. The handlers that prove chunks arrive as
 * they are written wait, after their first chunk, for a file the test writes into their
 * /workspace only once it has read that chunk: a response buffered anywhere on the way would
 * deadlock until the function's timeout, and the test would see Sandbox.Timedout instead.
 */
let k: TestKiln;
let lambda: LambdaClient;
const made: string[] = [];
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4 } }, provided: { pool: { minIdle: 0, maxSandboxes: 2 } }, python: null, shell: null } });
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
});
afterAll(async () => {
  for (const name of made) await lambda.send(new DeleteFunctionCommand({ FunctionName: name })).catch(() => undefined);
  lambda?.destroy();
  await k?.stop();
});

async function create(name: string, code: string, extra: Record<string, unknown> = {}) {
  made.push(name);
  await lambda.send(
    new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: code }]) }, Timeout: 30, ...extra }),
  );
}

const GATE = GATE_JS;
const openGate = (token: string) => openGateIn(k.dataDir, token);

type Event = InvokeWithResponseStreamResponseEvent;
async function collect(events: AsyncIterable<Event> | undefined, onChunk: (text: string, n: number) => Promise<void> = () => Promise.resolve()) {
  const chunks: string[] = [];
  let complete: Event['InvokeComplete'];
  for await (const e of events ?? []) {
    if (e.PayloadChunk?.Payload) {
      chunks.push(Buffer.from(e.PayloadChunk.Payload).toString('utf8'));
      await onChunk(chunks[chunks.length - 1] ?? '', chunks.length);
    }
    if (e.InvokeComplete) complete = e.InvokeComplete;
  }
  return { chunks, complete };
}

const streamInvoke = (name: string, event: unknown, extra: Record<string, unknown> = {}) =>
  lambda.send(new InvokeWithResponseStreamCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(event)), ...extra }));

describe('InvokeWithResponseStream through the AWS SDK', () => {
  it('delivers each chunk while the handler still runs, then InvokeComplete', async () => {
    await create(
      'stream-gated',
      `${GATE}
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('first ' + context.awsRequestId + '\\n');
  await gate(event.token);
  responseStream.write('second\\n');
  responseStream.end('third\\n');
});`,
    );
    const token = `t${Date.now().toString(36)}`;
    const res = await streamInvoke('stream-gated', { token }, { LogType: 'Tail' });
    expect(res.StatusCode).toBe(200);
    expect(res.ExecutedVersion).toBe('$LATEST');
    const requestId = res.$metadata.requestId;
    // Chunk 2 is written only after the test has read chunk 1 and opened the gate.
    const { chunks, complete } = await collect(res.EventStream, async (_text, n) => {
      if (n === 1) await openGate(token);
    });
    // Writes that reach the executor together may travel as one chunk (executor/src/lambda/stream.ts).
    expect([chunks[0], chunks.slice(1).join('')]).toEqual([`first ${requestId}\n`, 'second\nthird\n']);
    expect(complete?.ErrorCode).toBeUndefined();
    expect(Buffer.from(complete?.LogResult ?? '', 'base64').toString('utf8')).toContain(`REPORT RequestId: ${requestId}`);
  });

  it('returns a non-streaming handler\'s result as one chunk, byte for byte', async () => {
    await create('stream-plain', `exports.handler = async (event) => ({ echo: event.echo, s: 'x' });`);
    const { chunks, complete } = await collect((await streamInvoke('stream-plain', { echo: 1.5 })).EventStream);
    expect(chunks).toEqual(['{"echo":1.5,"s":"x"}']);
    expect(complete?.ErrorCode).toBeUndefined();
    // Up to Lambda's 6 MB synchronous limit, still one chunk.
    const big = await collect((await streamInvoke('stream-plain', { echo: 'y'.repeat(5 * 1024 * 1024) })).EventStream);
    expect(big.chunks.map((c) => c.length)).toEqual([5 * 1024 * 1024 + '{"echo":"","s":"x"}'.length]);
  });

  it('ends with the handler\'s error, or the timeout, in InvokeComplete after the chunks already sent', async () => {
    await create(
      'stream-fails',
      `exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('partial');
  await new Promise((r) => setTimeout(r, 10));
  if (event.hang) await new Promise(() => setInterval(() => undefined, 1000));
  throw new TypeError('broke mid-stream');
});`,
      { Timeout: 2 },
    );
    const failed = await collect((await streamInvoke('stream-fails', {})).EventStream);
    expect(failed.chunks).toEqual(['partial']);
    expect(failed.complete).toMatchObject({ ErrorCode: 'TypeError', ErrorDetails: 'broke mid-stream' });
    const timedOut = await collect((await streamInvoke('stream-fails', { hang: true })).EventStream);
    expect(timedOut.chunks).toEqual(['partial']);
    expect(timedOut.complete).toMatchObject({ ErrorCode: 'Sandbox.Timedout', ErrorDetails: 'Task timed out after 2.00 seconds' });
  });

  it('sends many tiny writes as fewer, larger chunks, all bytes in order', async () => {
    await create('stream-tiny', `exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  for (let i = 0; i < 10000; i++) responseStream.write(String(i % 10));
  responseStream.end();
});`);
    const { chunks, complete } = await collect((await streamInvoke('stream-tiny', {})).EventStream);
    expect(chunks.join('')).toBe(Array.from({ length: 10000 }, (_, i) => String(i % 10)).join(''));
    expect(chunks.length).toBeLessThan(1000);
    expect(complete?.ErrorCode).toBeUndefined();
  });

  it('fails a response over 20 MB with Function.ResponseSizeTooLarge', async () => {
    await create(
      'stream-huge',
      `exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const mb = Buffer.alloc(1024 * 1024, 97);
  for (let i = 0; i < 25; i++) responseStream.write(mb);
  responseStream.end();
});`,
    );
    const { chunks, complete } = await collect((await streamInvoke('stream-huge', {})).EventStream);
    expect(chunks.join('').length).toBeLessThanOrEqual(20 * 1024 * 1024);
    expect(complete?.ErrorCode).toBe('Function.ResponseSizeTooLarge');
  });

  it('answers a missing function with ResourceNotFoundException before any stream', async () => {
    await expect(streamInvoke('stream-missing', {})).rejects.toBeInstanceOf(ResourceNotFoundException);
  });
});

/** A custom runtime's bootstrap (Node here, any language works) that streams through the Runtime API. */
const STREAMING_BOOTSTRAP = `#!/usr/bin/node
const http = require('http');
${GATE_JS}
const api = process.env.AWS_LAMBDA_RUNTIME_API;
function next() {
  http.get('http://' + api + '/2018-06-01/runtime/invocation/next', (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', async () => {
      const id = res.headers['lambda-runtime-aws-request-id'];
      const event = JSON.parse(body);
      const req = http.request('http://' + api + '/2018-06-01/runtime/invocation/' + id + '/response', {
        method: 'POST',
        headers: { 'Lambda-Runtime-Function-Response-Mode': 'streaming', 'Transfer-Encoding': 'chunked', 'Content-Type': 'text/plain', Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body' },
      }, (r) => { r.resume(); r.on('end', next); });
      req.write('custom first\\n');
      if (event.token) await gate(event.token);
      if (event.fail) {
        req.addTrailers({ 'Lambda-Runtime-Function-Error-Type': 'Custom.Failed', 'Lambda-Runtime-Function-Error-Body': Buffer.from(JSON.stringify({ errorMessage: 'stream broke', errorType: 'Custom.Failed' })).toString('base64') });
        req.end();
        return;
      }
      req.end('custom second\\n');
    });
  });
}
next();
`;

describe('custom runtimes: the Runtime API\'s streaming response mode', () => {
  it('streams chunked bodies as the bootstrap writes them, and error trailers end the stream with ErrorCode', async () => {
    made.push('stream-custom');
    await lambda.send(
      new CreateFunctionCommand({ FunctionName: 'stream-custom', Runtime: 'provided.al2023', Role: 'r', Handler: 'x.handler', Timeout: 30, Code: { ZipFile: makeZip([{ path: 'bootstrap', content: STREAMING_BOOTSTRAP, mode: 0o755 }]) } }),
    );
    const token = `p${Date.now().toString(36)}`;
    const res = await streamInvoke('stream-custom', { token });
    const { chunks, complete } = await collect(res.EventStream, async (_text, n) => {
      if (n === 1) await openGate(token);
    });
    expect(chunks).toEqual(['custom first\n', 'custom second\n']);
    expect(complete?.ErrorCode).toBeUndefined();
    const failed = await collect((await streamInvoke('stream-custom', { fail: true })).EventStream);
    expect(failed.chunks).toEqual(['custom first\n']);
    expect(failed.complete).toMatchObject({ ErrorCode: 'Custom.Failed', ErrorDetails: 'stream broke' });
  });
});

describe('function URLs in RESPONSE_STREAM mode', () => {
  it('stream the body with the status, headers and cookies of HttpResponseStream.from', async () => {
    await create(
      'stream-url',
      `${GATE}
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const token = event.queryStringParameters.token;
  responseStream = awslambda.HttpResponseStream.from(responseStream, { statusCode: 201, headers: { 'x-kind': 'streamed', 'content-type': 'text/plain' }, cookies: ['a=1', 'b=2'] });
  await gate(token);
  responseStream.write('hello ');
  await gate(token + '-2');
  responseStream.end('world');
});`,
    );
    const { FunctionUrl, InvokeMode } = await lambda.send(new CreateFunctionUrlConfigCommand({ FunctionName: 'stream-url', AuthType: 'NONE', InvokeMode: 'RESPONSE_STREAM' }));
    expect(InvokeMode).toBe('RESPONSE_STREAM');
    // Updating another field keeps the mode.
    expect((await lambda.send(new UpdateFunctionUrlConfigCommand({ FunctionName: 'stream-url', AuthType: 'NONE' }))).InvokeMode).toBe('RESPONSE_STREAM');
    const token = `u${Date.now().toString(36)}`;
    const pending = fetch(`${FunctionUrl}?token=${token}`);
    await openGate(token);
    const res = await pending;
    expect(res.status).toBe(201);
    expect(res.headers.get('x-kind')).toBe('streamed');
    expect(res.headers.get('content-type')).toBe('text/plain');
    expect(res.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes('hello ')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
    expect(text).toBe('hello ');
    await openGate(`${token}-2`);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
    expect(text).toBe('hello world');
  });

  it('the same handler through InvokeWithResponseStream carries the prelude in the payload, as on AWS', async () => {
    await create(
      'stream-prelude',
      `exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream = awslambda.HttpResponseStream.from(responseStream, { statusCode: 202 });
  responseStream.end('body');
});`,
    );
    const { chunks } = await collect((await streamInvoke('stream-prelude', {})).EventStream);
    expect(chunks.join('')).toBe(`{"statusCode":202}${'\0'.repeat(8)}body`);
  });
});
