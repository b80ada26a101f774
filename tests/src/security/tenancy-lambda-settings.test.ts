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

describe('bad input on the new routes', () => {
  it('is a 4xx with a Lambda error type, never a 5xx, and the control plane keeps serving', async () => {
    const cases: Array<[string, string, string?]> = [
      ['GET', '/2017-03-31/tags/%E0%A4%A'],
      ['GET', '/2017-03-31/tags/arn%3Aaws%3Alambda%3Alocal%3Aalpha%3Afunction%3Asecret-fn%253A1'],
      ['POST', '/2017-03-31/tags/secret-fn', '{"Tags":[1]}'],
      ['POST', '/2017-03-31/tags/secret-fn', '{"Tags":{"k":{"nested":1}}}'],
      ['POST', '/2017-03-31/tags/secret-fn', 'nope'],
      ['DELETE', `/2017-03-31/tags/secret-fn?tagKeys=${'a'.repeat(300)}`],
      ['PUT', '/2017-10-31/functions/secret-fn/concurrency', '{"ReservedConcurrentExecutions":"1"}'],
      ['PUT', '/2017-10-31/functions/secret-fn/concurrency', '[]'],
      ['GET', '/2019-09-30/functions/%00/concurrency'],
      ['PUT', '/2019-09-25/functions/secret-fn/event-invoke-config', '{"MaximumRetryAttempts":1e400}'],
      ['PUT', '/2019-09-25/functions/secret-fn/event-invoke-config?Qualifier=..%2F..', '{"MaximumRetryAttempts":1}'],
      ['POST', '/2021-11-15/functions/secret-fn/response-streaming-invocations', '{'],
      ['POST', '/2021-11-15/functions/secret-fn/response-streaming-invocations', '{}'.padEnd(7 * 1024 * 1024, ' ')],
      ['GET', '/2019-09-25/functions/secret-fn/event-invoke-config/list?MaxItems=0'],
      ['GET', '/2015-03-31/functions/?FunctionVersion=SOME'],
      ['GET', '/2015-03-31/functions/secret-fn/versions?MaxItems=abc'],
    ];
    for (const [method, path, body] of cases) {
      const res = await fetch(k.url + path, { method, body, headers: { authorization: `Bearer ${ALPHA}`, ...(body ? { 'content-type': 'application/json' } : {}) } });
      const what = `${method} ${path.slice(0, 80)} → ${res.status}`;
      expect(res.status >= 400 && res.status < 500, what).toBe(true);
      expect(res.headers.get('x-amzn-errortype'), what).toMatch(/Exception$/);
      await res.arrayBuffer();
    }
    const got = await alpha.send(new GetFunctionCommand({ FunctionName: 'secret-fn' }));
    expect(got.Tags).toEqual({ owner: 'alpha' });
  });
});
