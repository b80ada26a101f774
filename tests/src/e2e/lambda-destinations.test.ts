import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CreateFunctionCommand,
  DeleteFunctionCommand,
  GetFunctionEventInvokeConfigCommand,
  InvalidParameterValueException,
  InvokeCommand,
  LambdaClient,
  PutFunctionEventInvokeConfigCommand,
  UpdateFunctionEventInvokeConfigCommand,
} from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';
import { waitFor } from '../support/wait.js';

/**
 * Event invoke config destinations through the official SDK: OnSuccess and OnFailure to other
 * Kiln functions of the same tenant, which receive Lambda's invocation record as their event
 * (read back from their executions); SQS, SNS and EventBridge ARNs refused; another tenant's
 * function refused. Tenants alpha and beta; every function is deleted in afterAll.
 */
const ALPHA = 'dest-alpha-key-0123456789abcdef0123';
const BETA = 'dest-beta-key-0123456789abcdef01234';

let k: TestKiln;
const clients: LambdaClient[] = [];
const made: Array<[LambdaClient, string]> = [];
let alpha: LambdaClient;
let beta: LambdaClient;

function lambdaOf(key: string): LambdaClient {
  const c = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: key }, maxAttempts: 1 });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 4 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}` },
  });
  alpha = lambdaOf(ALPHA);
  beta = lambdaOf(BETA);
}, 120_000);
afterAll(async () => {
  for (const [c, name] of made) await c.send(new DeleteFunctionCommand({ FunctionName: name })).catch(() => undefined);
  for (const c of clients) c.destroy();
  await k?.stop();
});

async function create(client: LambdaClient, name: string, code: string): Promise<string> {
  made.push([client, name]);
  const fn = await client.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: code }]) } }));
  return fn.FunctionArn as string;
}
const errorOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
/** A destination that returns the record it got, so its execution's result is that record. */
const ECHO = 'exports.handler = async (event) => event;';

type DestinationRecord = {
  version: string;
  timestamp: string;
  requestContext: { requestId: string; functionArn: string; condition: string; approximateInvokeCount: number };
  requestPayload: unknown;
  responseContext?: { statusCode: number; executedVersion: string; functionError?: string };
  responsePayload?: unknown;
};

/** The records the destination `name` received, from its succeeded executions. */
async function received(name: string, count: number): Promise<DestinationRecord[]> {
  return waitFor(
    `${count} record(s) at ${name}`,
    async () => {
      const res = await k.call('GET', `/api/v1/executions?function=${name}`, undefined, { authorization: `Bearer ${ALPHA}` });
      const done = (res.body.executions as Array<{ status: string; result?: DestinationRecord }>).filter((e) => e.status === 'succeeded' && e.result);
      return done.length >= count ? done.map((e) => e.result as DestinationRecord) : undefined;
    },
    60_000,
    300,
  );
}

describe('event invoke config destinations', () => {
  it('sends a success to OnSuccess and a failure, after its retries, to OnFailure, in Lambda\'s record shape', async () => {
    const okArn = await create(alpha, 'dest-on-success', ECHO);
    const failArn = await create(alpha, 'dest-on-failure', ECHO);
    const srcArn = await create(alpha, 'dest-source', 'exports.handler = async (event) => { if (event.fail) { const e = new Error("told to fail"); e.name = "ToldError"; throw e; } return { doubled: event.n * 2 }; };');
    const put = await alpha.send(
      new PutFunctionEventInvokeConfigCommand({ FunctionName: 'dest-source', MaximumRetryAttempts: 1, DestinationConfig: { OnSuccess: { Destination: okArn }, OnFailure: { Destination: failArn } } }),
    );
    expect(put.DestinationConfig).toEqual({ OnSuccess: { Destination: okArn }, OnFailure: { Destination: failArn } });
    expect((await alpha.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'dest-source' }))).DestinationConfig).toEqual(put.DestinationConfig);
    // Update without DestinationConfig keeps it.
    expect((await alpha.send(new UpdateFunctionEventInvokeConfigCommand({ FunctionName: 'dest-source', MaximumRetryAttempts: 1 }))).DestinationConfig).toEqual(put.DestinationConfig);

    const ok = await alpha.send(new InvokeCommand({ FunctionName: 'dest-source', InvocationType: 'Event', Payload: Buffer.from('{"n":21}') }));
    expect(ok.StatusCode).toBe(202);
    const [success] = await received('dest-on-success', 1);
    expect(success).toMatchObject({
      version: '1.0',
      requestContext: { requestId: expect.any(String), functionArn: `${srcArn}:$LATEST`, condition: 'Success', approximateInvokeCount: 1 },
      requestPayload: { n: 21 },
      responseContext: { statusCode: 200, executedVersion: '$LATEST' },
      responsePayload: { doubled: 42 },
    });
    expect(Number.isNaN(Date.parse(success!.timestamp))).toBe(false);
    expect(success!.responseContext!.functionError).toBeUndefined();

    await alpha.send(new InvokeCommand({ FunctionName: 'dest-source', InvocationType: 'Event', Payload: Buffer.from('{"fail":true}') }));
    const [failure] = await received('dest-on-failure', 1);
    expect(failure).toMatchObject({
      version: '1.0',
      requestContext: { functionArn: `${srcArn}:$LATEST`, condition: 'RetriesExhausted', approximateInvokeCount: 2 },
      requestPayload: { fail: true },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      responsePayload: { errorType: 'ToldError', errorMessage: 'told to fail' },
    });
    // Each went to its own destination only.
    expect(await received('dest-on-success', 1)).toHaveLength(1);
    expect(await received('dest-on-failure', 1)).toHaveLength(1);
  }, 180_000);

  it('refuses SQS, SNS, EventBridge and S3 ARNs, naming what is supported', async () => {
    await create(alpha, 'dest-refused', ECHO);
    for (const arn of ['arn:aws:sqs:us-east-1:alpha:q', 'arn:aws:sns:us-east-1:alpha:t', 'arn:aws:events:us-east-1:alpha:event-bus/default', 'arn:aws:s3:::bucket', 'not-an-arn']) {
      for (const DestinationConfig of [{ OnFailure: { Destination: arn } }, { OnSuccess: { Destination: arn } }]) {
        const err = await errorOf(alpha.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'dest-refused', DestinationConfig })));
        expect(err, arn).toBeInstanceOf(InvalidParameterValueException);
        expect((err as Error).message).toMatch(/Lambda function ARNs of this account/);
      }
    }
  }, 60_000);

  it("refuses a destination that does not exist, or is another tenant's function, alike", async () => {
    const theirs = await create(beta, 'dest-betas', ECHO);
    const mine = await create(alpha, 'dest-alphas', ECHO);
    // Beta's function by its own ARN, and by beta's name under alpha's account: neither exists for alpha.
    for (const Destination of [theirs, mine.replace(':function:dest-alphas', ':function:dest-betas'), mine.replace(':function:dest-alphas', ':function:dest-nothing')]) {
      const err = await errorOf(alpha.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'dest-alphas', DestinationConfig: { OnFailure: { Destination } } })));
      expect(err, Destination).toBeInstanceOf(InvalidParameterValueException);
      expect((err as Error).message).toMatch(/no function dest-(betas|nothing) in this account \(alpha\)/);
    }
    // And the other way round: beta cannot send its outcomes to alpha.
    const err = await errorOf(beta.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'dest-betas', DestinationConfig: { OnSuccess: { Destination: mine } } })));
    expect(err).toBeInstanceOf(InvalidParameterValueException);
  }, 60_000);
});

describe('destination loops', () => {
  it('stops a loop of destinations after 16 hops instead of running it forever', async () => {
    const code = 'exports.handler = async () => { throw new Error("loop"); };';
    const a = await create(alpha, 'dest-loop-a', code);
    const b = await create(alpha, 'dest-loop-b', code);
    await alpha.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'dest-loop-a', MaximumRetryAttempts: 0, DestinationConfig: { OnFailure: { Destination: b } } }));
    await alpha.send(new PutFunctionEventInvokeConfigCommand({ FunctionName: 'dest-loop-b', MaximumRetryAttempts: 0, DestinationConfig: { OnFailure: { Destination: a } } }));
    await alpha.send(new InvokeCommand({ FunctionName: 'dest-loop-a', InvocationType: 'Event', Payload: Buffer.from('{}') }));
    const count = async () => {
      let n = 0;
      for (const name of ['dest-loop-a', 'dest-loop-b']) {
        const res = await k.call('GET', `/api/v1/executions?function=${name}&limit=100`, undefined, { authorization: `Bearer ${ALPHA}` });
        n += (res.body.executions as unknown[]).length;
      }
      return n;
    };
    // The caller's invocation and 16 destination invocations; then nothing more, however long one waits.
    await waitFor('the loop to reach its bound', async () => ((await count()) >= 17 ? true : undefined), 120_000, 500);
    await new Promise((r) => setTimeout(r, 5_000));
    expect(await count()).toBe(17);
  }, 180_000);
});
