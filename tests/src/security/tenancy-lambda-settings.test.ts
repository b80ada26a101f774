import {
  CreateFunctionCommand,
  DeleteFunctionConcurrencyCommand,
  DeleteFunctionEventInvokeConfigCommand,
  GetAccountSettingsCommand,
  GetFunctionCommand,
  GetFunctionConcurrencyCommand,
  GetFunctionEventInvokeConfigCommand,
  InvokeWithResponseStreamCommand,
  LambdaClient,
  ListFunctionEventInvokeConfigsCommand,
  ListFunctionsCommand,
  ListTagsCommand,
  ListVersionsByFunctionCommand,
  PutFunctionConcurrencyCommand,
  PutFunctionEventInvokeConfigCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateFunctionEventInvokeConfigCommand,
} from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

/**
 * The Lambda operations added for issue 19 (response streaming, reserved concurrency, account
 * settings, tags, event invoke configs, version listing) as a second tenant would attack them: beta names alpha's function by name and by
 * ARN on every route. Each answer must be the one a missing function gets, and alpha's settings
 * must be exactly as before.
 */
const ALPHA = 'alpha-key-0123456789abcdef';
const BETA = 'beta-key-0123456789abcdef0';
const READER = 'reader-key-0123456789abcde';

let k: TestKiln;
const clients: LambdaClient[] = [];
let alpha: LambdaClient;
let beta: LambdaClient;
let alphaArn: string;
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 2 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}` },
  });
  alpha = lambdaOf(ALPHA);
  beta = lambdaOf(BETA);
  const made = await alpha.send(
    new CreateFunctionCommand({
      FunctionName: 'secret-fn',
      Runtime: 'nodejs20.x',
      Role: 'arn:aws:iam::123456789012:role/x',
      Handler: 'index.handler',
      Code: { ZipFile: makeZip([{ path: 'index.js', content: 'exports.handler = awslambda.streamifyResponse(async (e, s) => s.end("alpha secret"));' }]) },
      Tags: { owner: 'alpha' },
    }),
  );
  alphaArn = made.FunctionArn as string;
  await alpha.send(new PutFunctionConcurrencyCommand({ FunctionName: 'secret-fn', ReservedConcurrentExecutions: 3 }));
  await alpha.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'secret-fn', MaximumRetryAttempts: 1 }));
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  await k?.stop();
});

function lambdaOf(key: string): LambdaClient {
  const c = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: key }, maxAttempts: 1 });
  clients.push(c);
  return c;
}
const failure = (p: Promise<unknown>) => p.then(() => 'succeeded', (e: { name: string; $metadata?: { httpStatusCode?: number } }) => `${e.name} ${e.$metadata?.httpStatusCode}`);

describe("another tenant's function, by name and by ARN", () => {
  it('is ResourceNotFoundException on every new route, and alpha\'s settings are unchanged', async () => {
    const NOT_FOUND = 'ResourceNotFoundException 404';
    for (const name of ['secret-fn', alphaArn]) {
      expect(await failure(beta.send(new InvokeWithResponseStreamCommand({ FunctionName: name, Payload: Buffer.from('{}') })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new GetFunctionConcurrencyCommand({ FunctionName: name })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new PutFunctionConcurrencyCommand({ FunctionName: name, ReservedConcurrentExecutions: 0 })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new DeleteFunctionConcurrencyCommand({ FunctionName: name })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: name })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: name, MaximumRetryAttempts: 0 })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new UpdateFunctionEventInvokeConfigCommand({ FunctionName: name, MaximumRetryAttempts: 0 })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new DeleteFunctionEventInvokeConfigCommand({ FunctionName: name })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new ListFunctionEventInvokeConfigsCommand({ FunctionName: name })))).toBe(NOT_FOUND);
      expect(await failure(beta.send(new ListVersionsByFunctionCommand({ FunctionName: name })))).toBe(NOT_FOUND);
    }
    expect(await failure(beta.send(new ListTagsCommand({ Resource: alphaArn })))).toBe(NOT_FOUND);
    expect(await failure(beta.send(new TagResourceCommand({ Resource: alphaArn, Tags: { owner: 'beta' } })))).toBe(NOT_FOUND);
    expect(await failure(beta.send(new UntagResourceCommand({ Resource: alphaArn, TagKeys: ['owner'] })))).toBe(NOT_FOUND);
    const got = await alpha.send(new GetFunctionCommand({ FunctionName: 'secret-fn' }));
    expect({ tags: got.Tags, concurrency: got.Concurrency }).toEqual({ tags: { owner: 'alpha' }, concurrency: { ReservedConcurrentExecutions: 3 } });
    expect((await alpha.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'secret-fn' }))).MaximumRetryAttempts).toBe(1);
  });

  it("is not counted in the other tenant's account settings nor listed to it", async () => {
    const b = await beta.send(new GetAccountSettingsCommand({}));
    expect(b.AccountUsage?.FunctionCount).toBe(0);
    expect(b.AccountLimit?.UnreservedConcurrentExecutions).toBe(b.AccountLimit?.ConcurrentExecutions);
    expect((await alpha.send(new GetAccountSettingsCommand({}))).AccountUsage?.FunctionCount).toBe(1);
    expect((await beta.send(new ListFunctionsCommand({ FunctionVersion: 'ALL' }))).Functions).toEqual([]);
  });

  it('needs a key: unsigned and wrongly signed requests are refused on the new families', async () => {
    for (const path of ['/2016-08-19/account-settings', '/2019-09-30/functions/secret-fn/concurrency', `/2017-03-31/tags/${encodeURIComponent(alphaArn)}`]) {
      expect((await fetch(k.url + path)).status).toBe(401);
    }
    const forged = lambdaOf(READER);
    expect(await failure(forged.send(new GetAccountSettingsCommand({})))).toMatch(/ 40[13]$/);
    expect(await failure(forged.send(new InvokeWithResponseStreamCommand({ FunctionName: alphaArn, Payload: Buffer.from('{}') })))).toMatch(/ 40[13]$/);
  });
});
