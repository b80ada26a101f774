import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { startS3, type TestS3 } from '../support/s3.js';

/**
 * Synced volumes keep their archives in whichever blob store is configured: here S3 through the
 * AWS SDK against a real S3 API server (s3rver). A sync writes generation 1 and 2 as objects under
 * the deployment's prefix, the older one goes once the record names the newer, a later session
 * reads the latest, and deleting the volume deletes its objects.
 */
let s3: TestS3;
let k: TestKiln;
beforeAll(async () => {
  s3 = await startS3();
  // The SDK's usual credential chain: the environment.
  process.env.AWS_ACCESS_KEY_ID = s3.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.credentials.secretAccessKey;
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null },
    env: { KILN_S3_BUCKET: s3.bucket, KILN_S3_ENDPOINT: s3.endpoint, KILN_S3_FORCE_PATH_STYLE: 'true', KILN_S3_PREFIX: 'volsync' },
  });
}, 120_000);
afterAll(async () => {
  await k?.stop();
  await s3?.stop();
});

const sh = (id: string, line: string) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 });

describe('synced volumes in S3', () => {
  it('store each generation as an object, retire the previous one, and go with the volume', { timeout: 120_000 }, async () => {
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: s3.credentials });
    const objects = async () => ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'volsync/volumes/' }))).Contents ?? []).map((o) => o.Key as string);
    const v = await k.call('POST', '/api/v1/volumes', { name: 'in-s3', sizeMB: 4, mode: 'synced' });
    expect(v.status, JSON.stringify(v.body)).toBe(201);
    const a = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: 'in-s3', path: '/mnt/data' }] });
    expect(a.status, JSON.stringify(a.body)).toBe(201);
    const id = a.body.id as string;
    expect((await sh(id, 'echo one > /mnt/data/f')).body.exitCode).toBe(0);
    expect((await k.call('POST', `/api/v1/sessions/${id}/volumes/in-s3/sync`)).body.generation).toBe(1);
    const first = await objects();
    expect(first).toEqual([expect.stringMatching(new RegExp(`^volsync/volumes/[0-9a-f]{32}/${v.body.id as string}/1-[0-9a-f]{12}\\.tar$`))]);
    expect((await sh(id, 'echo two >> /mnt/data/f')).body.exitCode).toBe(0);
    expect((await k.call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
    const second = await objects();
    expect(second).toEqual([expect.stringMatching(/\/2-[0-9a-f]{12}\.tar$/)]);
    const b = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: 'in-s3', path: '/mnt/data', readOnly: true }] });
    expect(b.status, JSON.stringify(b.body)).toBe(201);
    expect((await sh(b.body.id as string, 'cat /mnt/data/f')).body.stdout).toBe('one\ntwo\n');
    expect((await k.call('DELETE', `/api/v1/sessions/${b.body.id as string}`)).status).toBe(204);
    expect((await k.call('DELETE', '/api/v1/volumes/in-s3')).status).toBe(204);
    expect(await objects()).toEqual([]);
  });
});
