import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateFunctionCommand, DeleteFunctionCommand, GetFunctionCommand, InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

/** KILN_REGION: the region in every ARN Kiln shows and in the handler's own environment and context. */
let k: TestKiln;
let lambda: LambdaClient;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 2 } }, python: null, shell: null, provided: null }, env: { KILN_REGION: 'eu-west-3' } });
  lambda = new LambdaClient({ endpoint: k.url, region: 'eu-west-3', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
});
afterAll(async () => {
  await lambda.send(new DeleteFunctionCommand({ FunctionName: 'region-fn' })).catch(() => undefined);
  lambda?.destroy();
  await k?.stop();
});

describe('KILN_REGION', () => {
  it('is the region of ARNs, of context.invokedFunctionArn and of AWS_REGION / AWS_DEFAULT_REGION', async () => {
    const code = 'exports.handler = async (e, ctx) => ({ region: process.env.AWS_REGION, defaultRegion: process.env.AWS_DEFAULT_REGION, arn: ctx.invokedFunctionArn });';
    const made = await lambda.send(
      new CreateFunctionCommand({ FunctionName: 'region-fn', Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: code }]) } }),
    );
    expect(made.FunctionArn).toBe('arn:aws:lambda:eu-west-3:default:function:region-fn');
    expect((await lambda.send(new GetFunctionCommand({ FunctionName: made.FunctionArn }))).Configuration?.FunctionName).toBe('region-fn');
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'region-fn', Payload: Buffer.from('{}') }));
    expect(JSON.parse(Buffer.from(out.Payload ?? []).toString())).toEqual({ region: 'eu-west-3', defaultRegion: 'eu-west-3', arn: 'arn:aws:lambda:eu-west-3:default:function:region-fn' });
  });
});
