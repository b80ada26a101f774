import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateFunctionCommand,
  LambdaClient,
  paginateListFunctions,
  PublishVersionCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionExists,
  waitUntilFunctionUpdatedV2,
  waitUntilPublishedVersionActive,
  type FunctionConfiguration,
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

const zip = (tag: string) => makeZip([{ path: 'index.js', content: `exports.handler = async () => '${tag}';` }]);
const create = (name: string) => lambda.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: zip('v0') } }));
// The waiters poll; Kiln's functions are Active at once, so each returns on its first poll.
const waiter = { client: undefined as unknown as LambdaClient, maxWaitTime: 30, minDelay: 1, maxDelay: 2 };

describe("the AWS SDK's waiters and paginator (issue 19)", () => {
  it('waitUntilFunctionExists / ActiveV2 / UpdatedV2 / PublishedVersionActive succeed as they do on AWS', async () => {
    const w = { ...waiter, client: lambda };
    const name = 'waited';
    await create(name);
    expect((await waitUntilFunctionExists(w, { FunctionName: name })).state).toBe('SUCCESS');
    expect((await waitUntilFunctionActiveV2(w, { FunctionName: name })).state).toBe('SUCCESS');
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: zip('v1') }));
    expect((await waitUntilFunctionUpdatedV2(w, { FunctionName: name })).state).toBe('SUCCESS');
    await lambda.send(new UpdateFunctionConfigurationCommand({ FunctionName: name, MemorySize: 256 }));
    expect((await waitUntilFunctionUpdatedV2(w, { FunctionName: name })).state).toBe('SUCCESS');
    const v = await lambda.send(new PublishVersionCommand({ FunctionName: name }));
    expect((await waitUntilPublishedVersionActive(w, { FunctionName: name, Qualifier: v.Version })).state).toBe('SUCCESS');
    // A function that does not exist: the exists waiter times out rather than succeeding.
    const missing = await waitUntilFunctionExists({ ...w, maxWaitTime: 2 }, { FunctionName: 'never-made' }).catch((err: Error) => err);
    expect(missing).toBeInstanceOf(Error);
  });

  it('paginateListFunctions walks every page once', async () => {
    const names = Array.from({ length: 7 }, (_, i) => `paged-${i}`);
    for (const n of names) await create(n);
    const seen: FunctionConfiguration[] = [];
    let pages = 0;
    for await (const page of paginateListFunctions({ client: lambda, pageSize: 3 }, {})) {
      pages++;
      seen.push(...(page.Functions ?? []));
    }
    const got = seen.map((f) => f.FunctionName ?? '').filter((n) => n.startsWith('paged-'));
    expect(got.sort()).toEqual(names);
    expect(new Set(seen.map((f) => f.FunctionName)).size).toBe(seen.length);
    expect(pages).toBeGreaterThanOrEqual(3);
  });
});
