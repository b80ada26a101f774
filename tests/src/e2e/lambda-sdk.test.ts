import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetPolicyCommand,
  GetFunctionConfigurationCommand,
  GetFunctionCommand,
  InvalidParameterValueException,
  InvalidRequestContentException,
  InvokeCommand,
  PreconditionFailedException,
  LambdaClient,
  ListFunctionsCommand,
  PublishVersionCommand,
  ListLayersCommand,
  RequestTooLargeException,
  ResourceConflictException,
  ResourceNotFoundException,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
} from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

let k: TestKiln;
let lambda: LambdaClient;
beforeAll(async () => {
  k = await startTestKiln();
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
});
afterAll(async () => {
  lambda?.destroy();
  await k?.stop();
});

/** A handler whose module state (a counter) shows whether an instance was reused. */
const handlerZip = (tag: string) =>
  makeZip([
    {
      path: 'index.js',
      content: `let n = 0;
exports.handler = async (event, ctx) => {
  n += 1;
  console.log('tag ${tag} call', n);
  if (event.fail) throw new RangeError('asked to fail');
  if (event.sleepMs) await new Promise((r) => setTimeout(r, event.sleepMs));
  return { tag: '${tag}', n, version: ctx.functionVersion, echo: event.echo ?? null };
};`,
    },
  ]);

const decode = (p: Uint8Array | undefined) => JSON.parse(Buffer.from(p ?? []).toString('utf8'));
const invoke = (name: string, event: unknown, extra: Record<string, string> = {}) =>
  lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(event)), ...extra }));

async function create(name: string, zip: Buffer, extra: Record<string, unknown> = {}) {
  return lambda.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: zip }, ...extra }));
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the AWS SDK Lambda client pointed at Kiln', () => {
  it('creates a function from a zip, gets it and invokes it synchronously with warm reuse', async () => {
    const created = await create('sdk-hello', handlerZip('v1'), { Environment: { Variables: { GREETING: 'hi' } }, Description: 'first' });
    expect(created.FunctionName).toBe('sdk-hello');
    expect(created.Version).toBe('$LATEST');
    expect(created.CodeSha256).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(created.State).toBe('Active');
    const got = await lambda.send(new GetFunctionCommand({ FunctionName: 'sdk-hello' }));
    expect(got.Configuration?.Environment?.Variables).toEqual({ GREETING: 'hi' });
    expect(got.Configuration?.Timeout).toBe(3);
    // Full and partial ARNs name the same function, as in Lambda.
    const byArn = await lambda.send(new GetFunctionCommand({ FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:sdk-hello' }));
    expect(byArn.Configuration?.FunctionName).toBe('sdk-hello');

    const first = await invoke('sdk-hello', { echo: 'a' });
    expect(first.StatusCode).toBe(200);
    expect(first.FunctionError).toBeUndefined();
    expect(first.ExecutedVersion).toBe('$LATEST');
    expect(decode(first.Payload)).toEqual({ tag: 'v1', n: 1, version: '$LATEST', echo: 'a' });
    const second = await invoke('sdk-hello', {});
    expect(decode(second.Payload).n).toBe(2);
  });

  it('returns the log tail with LogType Tail, and 204 for DryRun', async () => {
    const res = await invoke('sdk-hello', {}, { LogType: 'Tail' });
    const log = Buffer.from(res.LogResult ?? '', 'base64').toString('utf8');
    expect(log).toMatch(/START RequestId: /);
    expect(log).toMatch(/tag v1 call/);
    expect(log).toMatch(/REPORT RequestId: .*Duration/);
    const dry = await invoke('sdk-hello', {}, { InvocationType: 'DryRun' });
    expect(dry.StatusCode).toBe(204);
  });

  it('runs Event invocations later through the queue (202)', async () => {
    const res = await invoke('sdk-hello', { echo: 'async' }, { InvocationType: 'Event' });
    expect(res.StatusCode).toBe(202);
    const id = res.$metadata.requestId;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const record = await waitFor('the async invocation', async () => {
      const r = await k.call('GET', `/api/v1/executions/${id}`);
      return r.body.status === 'succeeded' ? r.body : undefined;
    });
    expect(record.result.echo).toBe('async');
  });

  it('reports a handler error as X-Amz-Function-Error: Unhandled with status 200', async () => {
    const res = await invoke('sdk-hello', { fail: true });
    expect(res.StatusCode).toBe(200);
    expect(res.FunctionError).toBe('Unhandled');
    const body = decode(res.Payload);
    expect(body.errorType).toBe('RangeError');
    expect(body.errorMessage).toBe('asked to fail');
    expect(Array.isArray(body.trace)).toBe(true);
  });

  it('times out with Lambda\'s message', async () => {
    await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'sdk-hello', Timeout: 1 }));
    const res = await invoke('sdk-hello', { sleepMs: 5000 });
    expect(res.FunctionError).toBe('Unhandled');
    expect(decode(res.Payload).errorMessage).toMatch(/Task timed out after 1\.00 seconds/);
    await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'sdk-hello', Timeout: 3 }));
  });

  it('runs new code on a new instance after UpdateFunctionCode', async () => {
    const before = decode((await invoke('sdk-hello', {})).Payload);
    expect(before.tag).toBe('v1');
    const oldSha = (await lambda.send(new GetFunctionCommand({ FunctionName: 'sdk-hello' }))).Configuration?.CodeSha256;
    const updated = await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'sdk-hello', ZipFile: handlerZip('v2') }));
    expect(updated.CodeSha256).not.toBe(oldSha);
    const after = decode((await invoke('sdk-hello', {})).Payload);
    expect(after).toMatchObject({ tag: 'v2', n: 1 });
  });

  it('publishes an immutable version and invokes it by Qualifier', async () => {
    const v1 = await lambda.send(new PublishVersionCommand({ FunctionName: 'sdk-hello', Description: 'release 1' }));
    expect(v1.Version).toBe('1');
    expect(v1.FunctionArn).toMatch(/:function:sdk-hello:1$/);
    // Publishing an unchanged $LATEST again returns the same version.
    expect((await lambda.send(new PublishVersionCommand({ FunctionName: 'sdk-hello' }))).Version).toBe('1');
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'sdk-hello', ZipFile: handlerZip('v3') }));
    const pinned = await invoke('sdk-hello', {}, { Qualifier: '1' });
    expect(pinned.ExecutedVersion).toBe('1');
    expect(decode(pinned.Payload)).toMatchObject({ tag: 'v2', version: '1' });
    const latest = await invoke('sdk-hello', {});
    expect(decode(latest.Payload)).toMatchObject({ tag: 'v3', version: '$LATEST' });
    await expect(invoke('sdk-hello', {}, { Qualifier: '7' })).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('pages ListFunctions with Marker and MaxItems', async () => {
    for (const n of ['sdk-list-a', 'sdk-list-b', 'sdk-list-c']) await create(n, handlerZip(n));
    const names: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const page = await lambda.send(new ListFunctionsCommand({ MaxItems: 2, Marker: marker }));
      expect((page.Functions ?? []).length).toBeLessThanOrEqual(2);
      names.push(...(page.Functions ?? []).map((f) => f.FunctionName as string));
      marker = page.NextMarker;
      pages++;
    } while (marker);
    expect(names).toEqual(['sdk-hello', 'sdk-list-a', 'sdk-list-b', 'sdk-list-c']);
    expect(pages).toBe(2);
  });

  it('throws the right exception classes for service errors', async () => {
    await expect(lambda.send(new GetFunctionCommand({ FunctionName: 'no-such-function' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(invoke('no-such-function', {})).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(create('sdk-hello', handlerZip('dup'))).rejects.toBeInstanceOf(ResourceConflictException);
    await expect(create('sdk-bad-runtime', handlerZip('x'), { Runtime: 'cobol85' })).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(create('sdk-bad-zip', Buffer.from('not a zip archive, no central directory'))).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(lambda.send(new InvokeCommand({ FunctionName: 'sdk-hello', Payload: Buffer.from('{not json') }))).rejects.toBeInstanceOf(InvalidRequestContentException);
    const big = Buffer.from(JSON.stringify({ s: 'x'.repeat(6 * 1024 * 1024) }));
    await expect(lambda.send(new InvokeCommand({ FunctionName: 'sdk-hello', Payload: big }))).rejects.toBeInstanceOf(RequestTooLargeException);
    const asyncBig = Buffer.from(JSON.stringify({ s: 'x'.repeat(1024 * 1024) }));
    await expect(lambda.send(new InvokeCommand({ FunctionName: 'sdk-hello', Payload: asyncBig, InvocationType: 'Event' }))).rejects.toBeInstanceOf(RequestTooLargeException);
    // RevisionId guards updates and publishing: a stale one is 412, the current one goes through.
    const now = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'sdk-hello' }));
    const updated = await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'sdk-hello', Description: 'rev', RevisionId: now.RevisionId }));
    expect(updated.RevisionId).not.toBe(now.RevisionId);
    for (const stale of [
      new UpdateFunctionConfigurationCommand({ FunctionName: 'sdk-hello', Description: 'stale', RevisionId: now.RevisionId }),
      new UpdateFunctionCodeCommand({ FunctionName: 'sdk-hello', ZipFile: handlerZip('stale'), RevisionId: now.RevisionId }),
      new PublishVersionCommand({ FunctionName: 'sdk-hello', RevisionId: now.RevisionId }),
    ]) {
      await expect(lambda.send(stale as never)).rejects.toBeInstanceOf(PreconditionFailedException);
    }
    expect((await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'sdk-hello' }))).Description).toBe('rev');
    // Lambda's reserved environment keys are refused, on create and on update, as Lambda refuses them.
    const reserved = await create('sdk-reserved', handlerZip('r'), { Environment: { Variables: { AWS_REGION: 'x', OK_NAME: '1' } } }).catch((e: unknown) => e);
    expect(reserved).toBeInstanceOf(InvalidParameterValueException);
    expect((reserved as Error).message).toMatch(/reserved keys .* Reserved keys used in this request: AWS_REGION$/);
    const runtimeApi = await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'sdk-hello', Environment: { Variables: { AWS_LAMBDA_RUNTIME_API: '10.0.0.1:9001' } } })).catch((e: unknown) => e);
    expect(runtimeApi).toBeInstanceOf(InvalidParameterValueException);
    // Operations Kiln does not implement: an exception the SDK names (not UnknownError), 404.
    for (const cmd of [new ListLayersCommand({}), new GetPolicyCommand({ FunctionName: 'sdk-hello' })]) {
      const err = (await lambda.send(cmd as never).catch((e: unknown) => e)) as { name: string; message: string; $metadata: { httpStatusCode?: number } };
      expect({ name: err.name, status: err.$metadata.httpStatusCode }).toEqual({ name: 'UnknownOperationException', status: 404 });
      expect(err.message).toMatch(/^Kiln does not implement the Lambda operation GET \/20\d\d-\d\d-\d\d\//);
    }
  });

  it('hands the handler its ClientContext and the ARN it was invoked by, qualified as the caller qualified it (issue 19 defect 6)', async () => {
    const zip = makeZip([{ path: 'index.js', content: 'exports.handler = async (e, ctx) => ({ arn: ctx.invokedFunctionArn, cc: ctx.clientContext ?? null });' }]);
    await create('sdk-context', zip);
    await lambda.send(new PublishVersionCommand({ FunctionName: 'sdk-context' }));
    const cc = { client: { app_title: 'kiln-test' }, custom: { n: 1 }, env: { locale: 'en' } };
    const plain = await lambda.send(new InvokeCommand({ FunctionName: 'sdk-context', ClientContext: Buffer.from(JSON.stringify(cc)).toString('base64'), Payload: Buffer.from('{}') }));
    expect(decode(plain.Payload)).toEqual({ arn: 'arn:aws:lambda:us-east-1:default:function:sdk-context', cc });
    const v1 = await lambda.send(new InvokeCommand({ FunctionName: 'sdk-context', Qualifier: '1', Payload: Buffer.from('{}') }));
    expect(decode(v1.Payload)).toEqual({ arn: 'arn:aws:lambda:us-east-1:default:function:sdk-context:1', cc: null });
    const latest = await lambda.send(new InvokeCommand({ FunctionName: 'sdk-context:$LATEST', Payload: Buffer.from('{}') }));
    expect(decode(latest.Payload).arn).toBe('arn:aws:lambda:us-east-1:default:function:sdk-context:$LATEST');
    // What Lambda refuses: not base64 of a JSON object, or too long.
    for (const bad of ['not base64!', Buffer.from('[1,2]').toString('base64'), Buffer.from('{"a":').toString('base64'), Buffer.from(JSON.stringify({ s: 'x'.repeat(4000) })).toString('base64')]) {
      await expect(lambda.send(new InvokeCommand({ FunctionName: 'sdk-context', ClientContext: bad, Payload: Buffer.from('{}') }))).rejects.toBeInstanceOf(InvalidRequestContentException);
    }
  });

  it('deletes a function', async () => {
    await lambda.send(new DeleteFunctionCommand({ FunctionName: 'sdk-hello' }));
    await expect(lambda.send(new GetFunctionCommand({ FunctionName: 'sdk-hello' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(lambda.send(new DeleteFunctionCommand({ FunctionName: 'sdk-hello' }))).rejects.toBeInstanceOf(ResourceNotFoundException);
    // Nothing of it is left in Redis.
    expect(await k.redis.keys(`${k.prefix}:*sdk-hello*`)).toEqual([]);
  });
});
