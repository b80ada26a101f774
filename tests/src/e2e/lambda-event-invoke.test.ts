import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateAliasCommand,
  CreateFunctionCommand,
  DeleteAliasCommand,
  DeleteFunctionCommand,
  DeleteFunctionEventInvokeConfigCommand,
  GetFunctionEventInvokeConfigCommand,
  InvalidParameterValueException,
  InvokeCommand,
  LambdaClient,
  ListFunctionEventInvokeConfigsCommand,
  ListFunctionsCommand,
  ListVersionsByFunctionCommand,
  PublishVersionCommand,
  PutFunctionEventInvokeConfigCommand,
  ResourceNotFoundException,
  UpdateFunctionConfigurationCommand,
  UpdateFunctionEventInvokeConfigCommand,
  paginateListFunctions,
  paginateListVersionsByFunction,
} from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';
import { GATE_JS, gateReached, openGate } from '../support/gate.js';

/**
 * FunctionEventInvokeConfig through the official SDK: its CRUD, and its MaximumRetryAttempts and
 * MaximumEventAgeInSeconds honoured by asynchronous invocations (seen in the dead letters); and
 * ListFunctions / ListVersionsByFunction with every version. One sandbox and one worker slot, so
 * that an event can be held in the queue behind a running invocation.
 */
let k: TestKiln;
let lambda: LambdaClient;
const made: string[] = [];
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 1 } }, python: null, shell: null, provided: null } });
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
    new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: code }]) }, ...extra }),
  );
}
const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
type DeadLetter = { id: string; attempts: number; error: { errorType: string } };
async function deadLetter(name: string, id: string): Promise<DeadLetter> {
  const until = Date.now() + 40_000;
  for (;;) {
    const res = await k.call('GET', `/api/v1/functions/${name}/dead-letters`);
    const found = (res.body.deadLetters as DeadLetter[]).find((d) => d.id === id);
    if (found) return found;
    if (Date.now() > until) throw new Error(`no dead letter ${id} for ${name}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
const event = (name: string, qualifier?: string) => lambda.send(new InvokeCommand({ FunctionName: name, Qualifier: qualifier, InvocationType: 'Event', Payload: Buffer.from('{}') }));

describe('FunctionEventInvokeConfig', () => {
  it('is put, read, updated, listed and deleted per qualifier', async () => {
    const fn = await create('eic-crud', 'exports.handler = async () => 1;');
    await lambda.send(new PublishVersionCommand({ FunctionName: 'eic-crud' }));
    await lambda.send(new CreateAliasCommand({ FunctionName: 'eic-crud', Name: 'live', FunctionVersion: '1' }));
    const put = await lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 }));
    expect(put).toMatchObject({ FunctionArn: `${fn.FunctionArn}:$LATEST`, MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 });
    expect(put.LastModified).toBeInstanceOf(Date);
    const updated = await lambda.send(new UpdateFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', MaximumEventAgeInSeconds: 120 }));
    expect(updated).toMatchObject({ MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 120 });
    await lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', Qualifier: 'live', MaximumRetryAttempts: 1 }));
    expect((await lambda.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud:live' }))).MaximumRetryAttempts).toBe(1);
    // Put replaces: the fields not given are gone.
    expect((await lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', MaximumRetryAttempts: 2 }))).MaximumEventAgeInSeconds).toBeUndefined();
    const listed = await lambda.send(new ListFunctionEventInvokeConfigsCommand({ FunctionName: 'eic-crud' }));
    expect(listed.FunctionEventInvokeConfigs?.map((c) => c.FunctionArn)).toEqual([`${fn.FunctionArn}:$LATEST`, `${fn.FunctionArn}:live`]);
    await lambda.send(new DeleteFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', Qualifier: 'live' }));
    expect(await errorOf(lambda.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', Qualifier: 'live' })))).toBeInstanceOf(ResourceNotFoundException);
    expect(await errorOf(lambda.send(new UpdateFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', Qualifier: 'live', MaximumRetryAttempts: 1 })))).toBeInstanceOf(ResourceNotFoundException);
    // An alias takes its config with it: one made again under the name starts without.
    await lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', Qualifier: 'live', MaximumRetryAttempts: 0 }));
    await lambda.send(new DeleteAliasCommand({ FunctionName: 'eic-crud', Name: 'live' }));
    await lambda.send(new CreateAliasCommand({ FunctionName: 'eic-crud', Name: 'live', FunctionVersion: '1' }));
    expect(await errorOf(lambda.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'eic-crud', Qualifier: 'live' })))).toBeInstanceOf(ResourceNotFoundException);
  });

  it('refuses what Lambda refuses, and qualifiers or functions that do not exist', async () => {
    await create('eic-bad', 'exports.handler = async () => 1;');
    for (const input of [{ MaximumRetryAttempts: 3 }, { MaximumRetryAttempts: -1 }, { MaximumEventAgeInSeconds: 59 }, { MaximumEventAgeInSeconds: 21601 }, { DestinationConfig: { OnFailure: { Destination: 'arn:aws:sqs:us-east-1:1:q' } } }]) {
      expect(await errorOf(lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-bad', ...input })))).toBeInstanceOf(InvalidParameterValueException);
    }
    expect(await errorOf(lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-bad', Qualifier: '7', MaximumRetryAttempts: 1 })))).toBeInstanceOf(ResourceNotFoundException);
    expect(await errorOf(lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'no-such-fn', MaximumRetryAttempts: 1 })))).toBeInstanceOf(ResourceNotFoundException);
  });

  it('MaximumRetryAttempts decides how often a failing event is tried before it is dead-lettered', async () => {
    await create('eic-retries', 'exports.handler = async () => { throw new Error("always"); };');
    await lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-retries', MaximumRetryAttempts: 0 }));
    const once = await event('eic-retries');
    expect((await deadLetter('eic-retries', once.$metadata.requestId as string)).attempts).toBe(1);
    await lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-retries', MaximumRetryAttempts: 1 }));
    const twice = await event('eic-retries');
    expect(await deadLetter('eic-retries', twice.$metadata.requestId as string)).toMatchObject({ attempts: 2, error: { errorType: 'Error' } });
  });

  it('MaximumEventAgeInSeconds gives up an event that waited longer in the queue, without running it', { timeout: 150_000 }, async () => {
    await create('eic-blocker', `${GATE_JS}\nexports.handler = async (e) => { await gate(e.token); return 'unblocked'; };`, { Timeout: 120 });
    await create('eic-aged', 'exports.handler = async () => "ran";');
    await lambda.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'eic-aged', MaximumEventAgeInSeconds: 60 }));
    const token = `a${Date.now().toString(36)}`;
    // The only sandbox (and worker slot) runs the blocker until the gate opens; the event waits behind it.
    const blocker = lambda.send(new InvokeCommand({ FunctionName: 'eic-blocker', Payload: Buffer.from(JSON.stringify({ token })) }));
    await gateReached(k.dataDir, token);
    const aged = await event('eic-aged');
    await new Promise((r) => setTimeout(r, 61_000));
    await openGate(k.dataDir, token);
    expect(Buffer.from((await blocker).Payload ?? []).toString()).toBe('"unblocked"');
    expect(await deadLetter('eic-aged', aged.$metadata.requestId as string)).toMatchObject({ attempts: 0, error: { errorType: 'Kiln.EventAgeExceeded' } });
  });
});

describe('listing every version', () => {
  it('ListFunctions with FunctionVersion ALL and ListVersionsByFunction page through $LATEST and published versions', async () => {
    await create('versions-a', 'exports.handler = async () => 1;');
    // A version is published only when $LATEST changed since the last one, as on AWS.
    for (let i = 0; i < 3; i++) {
      await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: 'versions-a', Description: `v${i}` }));
      await lambda.send(new PublishVersionCommand({ FunctionName: 'versions-a' }));
    }
    const all: string[] = [];
    for await (const page of paginateListFunctions({ client: lambda, pageSize: 2 }, { FunctionVersion: 'ALL' })) {
      for (const f of page.Functions ?? []) if (f.FunctionName === 'versions-a') all.push(f.Version as string);
    }
    expect(all).toEqual(['$LATEST', '1', '2', '3']);
    const latestOnly = (await lambda.send(new ListFunctionsCommand({}))).Functions?.filter((f) => f.FunctionName === 'versions-a').map((f) => f.Version);
    expect(latestOnly).toEqual(['$LATEST']);
    const versions: string[] = [];
    for await (const page of paginateListVersionsByFunction({ client: lambda, pageSize: 3 }, { FunctionName: 'versions-a' })) versions.push(...(page.Versions ?? []).map((v) => v.Version as string));
    expect(versions).toEqual(['$LATEST', '1', '2', '3']);
    const first = await lambda.send(new ListVersionsByFunctionCommand({ FunctionName: 'versions-a', MaxItems: 2 }));
    expect({ versions: first.Versions?.map((v) => v.Version), next: first.NextMarker }).toEqual({ versions: ['$LATEST', '1'], next: '1' });
  });
});
