import { afterAll, describe, expect, it } from 'vitest';
import { CreateFunctionCommand, DeleteFunctionCommand, InvokeCommand, LambdaClient, UpdateFunctionCodeCommand } from '@aws-sdk/client-lambda';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { removeDataDir, startTestKiln, type TestKiln } from '../support/kiln.js';
import { startS3, type TestS3 } from '../support/s3.js';
import { makeZip } from '../support/zip.js';

const TEMPLATES = { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null };
const handler = (answer: string) => makeZip([{ path: 'index.js', content: `exports.handler = async () => ${JSON.stringify(answer)};` }]);

function lambdaOf(k: TestKiln): LambdaClient {
  return new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
}

async function invoke(lambda: LambdaClient, name: string): Promise<unknown> {
  const out = await lambda.send(new InvokeCommand({ FunctionName: name }));
  return JSON.parse(Buffer.from(out.Payload ?? []).toString('utf8'));
}

/**
 * Code packages live in the configured blob store (storage/): S3 through the AWS SDK against a
 * real S3 API server, and blobs a deployment kept in Redis move to the configured store at start.
 */
describe('blob stores under Kiln', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('keeps function code in S3, and deletes it with the function', async () => {
    const s3: TestS3 = await startS3();
    cleanups.push(() => s3.stop());
    // The SDK's usual credential chain: the environment, as on a host with an S3 key.
    process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
    const k = await startTestKiln({ templates: TEMPLATES, env: { KILN_S3_BUCKET: s3.bucket, KILN_S3_ENDPOINT: s3.endpoint, KILN_S3_FORCE_PATH_STYLE: 'true', KILN_S3_PREFIX: 'deploy/one' } });
    cleanups.push(() => k.stop());
    const lambda = lambdaOf(k);
    const objects = async () => {
      const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials });
      const out = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'deploy/one/' }));
      client.destroy();
      return (out.Contents ?? []).map((o) => o.Key);
    };
    try {
      await lambda.send(new CreateFunctionCommand({ FunctionName: 'in-s3', Runtime: 'nodejs20.x', Role: 'arn:aws:iam::000000000000:role/x', Handler: 'index.handler', Code: { ZipFile: handler('one') } }));
      expect(await invoke(lambda, 'in-s3')).toBe('one');
      expect(await objects()).toEqual([expect.stringMatching(/^deploy\/one\/code\/default\/in-s3\/[0-9a-f]{64}-[0-9a-f]{12}$/)]);
      await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'in-s3', ZipFile: handler('two') }));
      expect(await invoke(lambda, 'in-s3')).toBe('two');
      // The replaced package stays for jobs queued before the update (retired), until the function goes.
      expect(await objects()).toHaveLength(2);
      expect(await k.redis.keys(`${k.prefix}:blob:*`)).toEqual([]);
      await lambda.send(new DeleteFunctionCommand({ FunctionName: 'in-s3' }));
      expect(await objects()).toEqual([]);
    } finally {
      lambda.destroy();
    }
  });

  it('moves the packages a deployment kept in Redis to the configured store when it starts', async () => {
    const before = await startTestKiln({ templates: TEMPLATES, env: { KILN_BLOB_STORE: 'redis' } });
    const lambda = lambdaOf(before);
    try {
      await lambda.send(new CreateFunctionCommand({ FunctionName: 'moved', Runtime: 'nodejs20.x', Role: 'arn:aws:iam::000000000000:role/x', Handler: 'index.handler', Code: { ZipFile: handler('kept') } }));
      // The package, and the Redis store's index of its folder.
      expect((await before.redis.keys(`${before.prefix}:blob:code/*`)).sort()).toEqual([expect.stringMatching(/\/moved\/\.index$/), expect.stringMatching(/\/moved\/[0-9a-f-]+$/)]);
    } finally {
      lambda.destroy();
      // Stopped without deleting its Redis keys: the next start is the same deployment.
      await before.kiln.stop({ stopExecutors: true });
      before.redis.disconnect();
      await removeDataDir(before.dataDir);
    }
    const after = await startTestKiln({ templates: TEMPLATES, prefix: before.prefix });
    cleanups.push(() => after.stop());
    const again = lambdaOf(after);
    try {
      expect(await invoke(again, 'moved')).toBe('kept');
      expect(await after.redis.keys(`${after.prefix}:blob:*`)).toEqual([]);
      const folder = join(after.dataDir, 'blobs', 'code', 'default', 'moved');
      expect(existsSync(folder) && readdirSync(folder)).toHaveLength(1);
    } finally {
      again.destroy();
    }
  });
});
