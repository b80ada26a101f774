import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  DeleteFunctionConcurrencyCommand,
  GetAccountSettingsCommand,
  GetFunctionCommand,
  GetFunctionConcurrencyCommand,
  InvalidParameterValueException,
  InvokeCommand,
  InvokeWithResponseStreamCommand,
  LambdaClient,
  ListTagsCommand,
  PutFunctionConcurrencyCommand,
  ResourceNotFoundException,
  TagResourceCommand,
  TooManyRequestsException,
  UntagResourceCommand,
} from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';
import { GATE_JS, gateReached, openGate } from '../support/gate.js';

/** Reserved concurrency, GetAccountSettings and tags through the official SDK, against real sandboxes. */
const EXECUTIONS_QUOTA = 40;
let k: TestKiln;
let lambda: LambdaClient;
const made: string[] = [];
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4 } }, python: null, shell: null, provided: null },
    env: { KILN_QUOTA_EXECUTIONS: String(EXECUTIONS_QUOTA) },
  });
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
});
afterAll(async () => {
  for (const name of made) await lambda.send(new DeleteFunctionCommand({ FunctionName: name })).catch(() => undefined);
  lambda?.destroy();
  await k?.stop();
});

async function create(name: string, code: string, extra: Record<string, unknown> = {}) {
  made.push(name);
  return lambda.send(
    new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: code }]) }, Timeout: 30, ...extra }),
  );
}
const invoke = (name: string, event: unknown = {}) => lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify(event)) }));
const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as { name: string; Reason?: string; message: string; $metadata: { httpStatusCode?: number } });

describe('reserved concurrency', () => {
  it('is set, read and removed; GetFunction shows it', async () => {
    await create('conc-crud', 'exports.handler = async () => "ok";');
    expect((await lambda.send(new GetFunctionConcurrencyCommand({ FunctionName: 'conc-crud' }))).ReservedConcurrentExecutions).toBeUndefined();
    expect((await lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-crud', ReservedConcurrentExecutions: 5 }))).ReservedConcurrentExecutions).toBe(5);
    expect((await lambda.send(new GetFunctionConcurrencyCommand({ FunctionName: 'conc-crud' }))).ReservedConcurrentExecutions).toBe(5);
    expect((await lambda.send(new GetFunctionCommand({ FunctionName: 'conc-crud' }))).Concurrency).toEqual({ ReservedConcurrentExecutions: 5 });
    await lambda.send(new DeleteFunctionConcurrencyCommand({ FunctionName: 'conc-crud' }));
    expect((await lambda.send(new GetFunctionConcurrencyCommand({ FunctionName: 'conc-crud' }))).ReservedConcurrentExecutions).toBeUndefined();
    expect((await lambda.send(new GetFunctionCommand({ FunctionName: 'conc-crud' }))).Concurrency).toBeUndefined();
  });

  it('0 throttles every invocation with TooManyRequestsException (ReservedFunctionConcurrentInvocationLimitExceeded)', async () => {
    await create('conc-zero', 'exports.handler = async () => "ran";');
    await lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-zero', ReservedConcurrentExecutions: 0 }));
    const sync = await errorOf(invoke('conc-zero'));
    expect(sync).toBeInstanceOf(TooManyRequestsException);
    expect({ reason: sync?.Reason, status: sync?.$metadata.httpStatusCode }).toEqual({ reason: 'ReservedFunctionConcurrentInvocationLimitExceeded', status: 429 });
    expect(await errorOf(lambda.send(new InvokeCommand({ FunctionName: 'conc-zero', InvocationType: 'Event', Payload: Buffer.from('{}') })))).toBeInstanceOf(TooManyRequestsException);
    expect(await errorOf(lambda.send(new InvokeWithResponseStreamCommand({ FunctionName: 'conc-zero', Payload: Buffer.from('{}') })))).toBeInstanceOf(TooManyRequestsException);
    await lambda.send(new DeleteFunctionConcurrencyCommand({ FunctionName: 'conc-zero' }));
    expect(Buffer.from((await invoke('conc-zero')).Payload ?? []).toString()).toBe('"ran"');
  });

  it('caps invocations in flight: past it a synchronous invoke is throttled, and the place frees when one ends', async () => {
    await create('conc-one', `${GATE_JS}\nexports.handler = async (event) => { if (event.token) await gate(event.token); return 'done'; };`);
    await lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-one', ReservedConcurrentExecutions: 1 }));
    const token = `c${Date.now().toString(36)}`;
    const first = invoke('conc-one', { token });
    await gateReached(k.dataDir, token);
    const second = await errorOf(invoke('conc-one'));
    expect(second).toBeInstanceOf(TooManyRequestsException);
    expect(second?.Reason).toBe('ReservedFunctionConcurrentInvocationLimitExceeded');
    await openGate(k.dataDir, token);
    expect(Buffer.from((await first).Payload ?? []).toString()).toBe('"done"');
    // The place is released as the first invocation settles, just after its caller got the answer.
    const until = Date.now() + 20_000;
    let third: unknown;
    do third = await invoke('conc-one').then((r) => Buffer.from(r.Payload ?? []).toString(), (e: unknown) => e);
    while (third instanceof TooManyRequestsException && Date.now() < until);
    expect(third).toBe('"done"');
  });

  it('counts an idempotent event under the id it runs as, so its end frees the place', async () => {
    await create('conc-idem', 'exports.handler = async () => "ok";');
    await lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-idem', ReservedConcurrentExecutions: 1 }));
    const sent = await fetch(`${k.url}/2015-03-31/functions/conc-idem/invocations`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', 'X-Amz-Invocation-Type': 'Event', 'X-Kiln-Idempotency-Key': 'once' } });
    expect(sent.status).toBe(202);
    const id = sent.headers.get('x-amzn-requestid') as string;
    const until = Date.now() + 20_000;
    while ((await k.call('GET', `/api/v1/executions/${id}`)).body.status !== 'succeeded' && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    // Released as the event settled (right after its record was stored): the next call gets the place.
    let out: unknown;
    do out = await invoke('conc-idem').then((r) => Buffer.from(r.Payload ?? []).toString(), (e: unknown) => e);
    while (out instanceof TooManyRequestsException && Date.now() < until);
    expect(out).toBe('"ok"');
  });

  it('refuses what Lambda refuses, naming it', async () => {
    await create('conc-bad', 'exports.handler = async () => 1;');
    for (const n of [-1, 1.5, EXECUTIONS_QUOTA + 1]) {
      expect(await errorOf(lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-bad', ReservedConcurrentExecutions: n })))).toBeInstanceOf(InvalidParameterValueException);
    }
    // Reservations together stay within the tenant's executions quota.
    await create('conc-bad-2', 'exports.handler = async () => 1;');
    await lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-bad', ReservedConcurrentExecutions: EXECUTIONS_QUOTA - 10 }));
    const over = await errorOf(lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-bad-2', ReservedConcurrentExecutions: 11 })));
    expect(over).toBeInstanceOf(InvalidParameterValueException);
    expect(over?.message).toMatch(/UnreservedConcurrentExecutions/);
    expect(await errorOf(lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'conc-bad:1', ReservedConcurrentExecutions: 1 })))).toBeInstanceOf(InvalidParameterValueException);
    expect(await errorOf(lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'no-such-fn', ReservedConcurrentExecutions: 1 })))).toBeInstanceOf(ResourceNotFoundException);
    expect(await errorOf(lambda.send(new GetFunctionConcurrencyCommand({ FunctionName: 'no-such-fn' })))).toBeInstanceOf(ResourceNotFoundException);
    await lambda.send(new DeleteFunctionConcurrencyCommand({ FunctionName: 'conc-bad' }));
  });
});

describe('GetAccountSettings', () => {
  it('reports the tenant\'s executions quota, what is not reserved of it, and its functions', async () => {
    await create('acct-a', 'exports.handler = async () => 1;');
    const before = (await lambda.send(new GetAccountSettingsCommand({}))).AccountLimit?.UnreservedConcurrentExecutions ?? 0;
    await lambda.send(new PutFunctionConcurrencyCommand({ FunctionName: 'acct-a', ReservedConcurrentExecutions: 7 }));
    const s = await lambda.send(new GetAccountSettingsCommand({}));
    expect(s.AccountLimit?.ConcurrentExecutions).toBe(EXECUTIONS_QUOTA);
    expect(s.AccountLimit?.UnreservedConcurrentExecutions).toBe(before - 7);
    expect(s.AccountLimit?.CodeSizeZipped).toBe(50 * 1024 * 1024);
    expect(s.AccountUsage?.FunctionCount).toBe(made.length);
    expect(s.AccountUsage?.TotalCodeSize).toBeGreaterThan(0);
    // Deleting the function drops its reservation.
    await lambda.send(new DeleteFunctionCommand({ FunctionName: 'acct-a' }));
    expect((await lambda.send(new GetAccountSettingsCommand({}))).AccountLimit?.UnreservedConcurrentExecutions).toBe(before);
  });
});

describe('tags', () => {
  it('are set on CreateFunction, shown by GetFunction and ListTags, added and removed by ARN', async () => {
    const created = await create('tagged', 'exports.handler = async () => 1;', { Tags: { team: 'core', 'cost center': '42' } });
    const arn = created.FunctionArn as string;
    expect((await lambda.send(new GetFunctionCommand({ FunctionName: 'tagged' }))).Tags).toEqual({ team: 'core', 'cost center': '42' });
    await lambda.send(new TagResourceCommand({ Resource: arn, Tags: { env: 'prod', team: 'platform' } }));
    expect((await lambda.send(new ListTagsCommand({ Resource: arn }))).Tags).toEqual({ team: 'platform', 'cost center': '42', env: 'prod' });
    await lambda.send(new UntagResourceCommand({ Resource: arn, TagKeys: ['cost center', 'absent'] }));
    expect((await lambda.send(new ListTagsCommand({ Resource: arn }))).Tags).toEqual({ team: 'platform', env: 'prod' });
    // Deleted with the function: one made again under the name starts without tags.
    await lambda.send(new DeleteFunctionCommand({ FunctionName: 'tagged' }));
    await create('tagged', 'exports.handler = async () => 1;');
    expect((await lambda.send(new ListTagsCommand({ Resource: arn }))).Tags).toEqual({});
  });

  it('refuses bad tags, qualified ARNs and missing functions; a create with bad tags makes nothing', async () => {
    await create('tag-bad', 'exports.handler = async () => 1;');
    const { FunctionArn } = (await lambda.send(new GetFunctionCommand({ FunctionName: 'tag-bad' }))).Configuration ?? {};
    const arn = FunctionArn as string;
    expect(await errorOf(lambda.send(new TagResourceCommand({ Resource: arn, Tags: { 'aws:owner': 'x' } })))).toBeInstanceOf(InvalidParameterValueException);
    expect(await errorOf(lambda.send(new TagResourceCommand({ Resource: arn, Tags: { k: 'v'.repeat(257) } })))).toBeInstanceOf(InvalidParameterValueException);
    const many = Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`k${i}`, 'v']));
    expect(await errorOf(lambda.send(new TagResourceCommand({ Resource: arn, Tags: many })))).toBeInstanceOf(InvalidParameterValueException);
    expect(await errorOf(lambda.send(new TagResourceCommand({ Resource: `${arn}:1`, Tags: { a: 'b' } })))).toBeInstanceOf(InvalidParameterValueException);
    expect(await errorOf(lambda.send(new ListTagsCommand({ Resource: arn.replace('tag-bad', 'no-such-fn') })))).toBeInstanceOf(ResourceNotFoundException);
    expect(await errorOf(create('tag-bad-create', 'exports.handler = async () => 1;', { Tags: { 'aws:x': '1' } }))).toBeInstanceOf(InvalidParameterValueException);
    expect(await errorOf(lambda.send(new GetFunctionCommand({ FunctionName: 'tag-bad-create' })))).toBeInstanceOf(ResourceNotFoundException);
  });
});
