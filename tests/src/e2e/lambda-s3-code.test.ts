/**
 * Lambda code from S3: CreateFunction and UpdateFunctionCode with Code.S3Bucket / S3Key /
 * S3ObjectVersion, through the AWS SDK's Lambda and S3 clients against an S3 API server (s3rver),
 * and the barriers a tenant meets: only the buckets the operator opened, only keys under its own
 * tenant's folder.
 */
import { CreateFunctionCommand, GetFunctionCommand, InvokeCommand, LambdaClient, UpdateFunctionCodeCommand } from '@aws-sdk/client-lambda';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { readZip } from '@kiln/control-plane/functions/zip';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { startS3, type TestS3 } from '../support/s3.js';
import { makeZip } from '../support/zip.js';

const ALPHA = 'lambdas3-alpha-key-0123456789abcd';
const ROLE = 'arn:aws:iam::000000000000:role/x';
const handler = (answer: string) => makeZip([{ path: 'index.js', content: `exports.handler = async () => ${JSON.stringify(answer)};` }]);

let s3: TestS3;
let k: TestKiln;
let lambda: LambdaClient;
let storage: S3Client;

beforeAll(async () => {
  s3 = await startS3('lambda-code');
  // The SDK's usual credential chain: the environment, as on a host with an S3 key.
  process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
  storage = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials });
  await storage.send(new CreateBucketCommand({ Bucket: 'not-opened' }));
  const put = (bucket: string, key: string, body: Uint8Array) => storage.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  await put(s3.bucket, 'alpha/app-v1.zip', handler('one'));
  await put(s3.bucket, 'alpha/app-v2.zip', handler('two'));
  await put(s3.bucket, 'alpha/not-a-zip.zip', Buffer.from('plain text'));
  await put(s3.bucket, 'beta/theirs.zip', handler('beta code'));
  await put('not-opened', 'alpha/app-v1.zip', handler('closed'));
  k = await startTestKiln({
    env: { KILN_API_KEYS: `alpha:${ALPHA}`, KILN_LAMBDA_S3_BUCKETS: s3.bucket, KILN_LAMBDA_S3_ENDPOINT: s3.endpoint, KILN_LAMBDA_S3_FORCE_PATH_STYLE: 'true' },
  });
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'any', secretAccessKey: ALPHA }, maxAttempts: 1 });
}, 120_000);
afterAll(async () => {
  lambda?.destroy();
  storage?.destroy();
  await k?.stop();
  await s3?.stop();
  delete process.env.AWS_ACCESS_KEY_ID;
  delete process.env.AWS_SECRET_ACCESS_KEY;
});

const invoke = async (name: string): Promise<unknown> => JSON.parse(Buffer.from((await lambda.send(new InvokeCommand({ FunctionName: name }))).Payload ?? []).toString());
const refusal = async (p: Promise<unknown>): Promise<{ name: string; message: string }> => {
  const err = (await p.then(() => undefined, (e: unknown) => e)) as { name: string; message: string } | undefined;
  if (!err) throw new Error('expected a refusal');
  return { name: err.name, message: err.message };
};

describe('Lambda code from S3', () => {
  it('deploys and updates a function from S3 keys, and GetFunction gives back the zip it read', async () => {
    await lambda.send(new CreateFunctionCommand({ FunctionName: 'from-s3', Runtime: 'nodejs20.x', Role: ROLE, Handler: 'index.handler', Code: { S3Bucket: s3.bucket, S3Key: 'alpha/app-v1.zip', S3ObjectVersion: 'null' } }));
    expect(await invoke('from-s3')).toBe('one');
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'from-s3', S3Bucket: s3.bucket, S3Key: 'alpha/app-v2.zip' }));
    expect(await invoke('from-s3')).toBe('two');
    const location = (await lambda.send(new GetFunctionCommand({ FunctionName: 'from-s3' }))).Code?.Location ?? '';
    const zip = readZip(Buffer.from(await (await fetch(location)).arrayBuffer()));
    expect(zip.map((e) => e.content.toString())).toEqual(['exports.handler = async () => "two";']);
  }, 120_000);

  it('refuses another tenant\'s key, a bucket not opened, a missing object, a non-zip and ZipFile with S3Bucket, with InvalidParameterValueException', async () => {
    const create = (name: string, code: Record<string, unknown>) => lambda.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: ROLE, Handler: 'index.handler', Code: code }));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ S3Bucket: s3.bucket, S3Key: 'beta/theirs.zip' }, /under your tenant's folder "alpha\/"/],
      // The SDK and the server resolve dot segments in the URL: this would read beta/theirs.zip.
      [{ S3Bucket: s3.bucket, S3Key: 'alpha/../beta/theirs.zip' }, /must not have "\." or "\.\." segments/],
      [{ S3Bucket: s3.bucket, S3Key: 'alpha/./../beta/theirs.zip' }, /must not have/],
      [{ S3Bucket: 'not-opened', S3Key: 'alpha/app-v1.zip' }, /not one of the buckets/],
      [{ S3Bucket: s3.bucket, S3Key: 'alpha/missing.zip' }, /GetObject\. S3 Error Code: NoSuchKey/],
      [{ S3Bucket: s3.bucket }, /S3Key is required|under your tenant/],
      [{ S3Bucket: s3.bucket, S3Key: 'alpha/app-v1.zip', ZipFile: handler('x') }, /either Code\.ZipFile or Code\.S3Bucket/],
    ];
    for (const [i, [code, message]] of cases.entries()) {
      const err = await refusal(create(`refused-${i}`, code));
      expect(err.name, JSON.stringify(code)).toBe('InvalidParameterValueException');
      expect(err.message, JSON.stringify(code)).toMatch(message);
    }
    const notZip = await refusal(create('not-zip', { S3Bucket: s3.bucket, S3Key: 'alpha/not-a-zip.zip' }));
    expect(notZip.name).toBe('InvalidParameterValueException');
    // Nothing was made by a refused create.
    for (const [i] of cases.entries()) expect((await refusal(lambda.send(new GetFunctionCommand({ FunctionName: `refused-${i}` })))).name).toBe('ResourceNotFoundException');
    // UpdateFunctionCode meets the same barriers, and the function keeps its code.
    const upd = await refusal(lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'from-s3', S3Bucket: s3.bucket, S3Key: 'beta/theirs.zip' })));
    expect(upd.name).toBe('InvalidParameterValueException');
    expect(await invoke('from-s3')).toBe('two');
  }, 120_000);
});
