import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { Redis } from 'ioredis';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { RedisBlobStore, type BlobStore } from '@kiln/control-plane/storage/blobs';
import { DiskBlobStore } from '@kiln/control-plane/storage/disk-blobs';
import { S3BlobStore } from '@kiln/control-plane/storage/s3-blobs';
import { BlobRetirements } from '@kiln/control-plane/storage/retired';
import { startS3, type TestS3 } from '../support/s3.js';

/**
 * One suite for every blob store adapter (storage/): what callers rely on holds for each, against
 * the real thing (Redis, a directory, an S3 API server).
 */
const adapters: Array<{ name: string; open: () => Promise<{ store: BlobStore; close: () => Promise<void> }> }> = [
  {
    name: 'disk',
    open: () => {
      const dir = mkdtempSync(join(tmpdir(), 'kiln-blobs-'));
      return Promise.resolve({ store: new DiskBlobStore(join(dir, 'blobs')), close: () => Promise.resolve(rmSync(dir, { recursive: true, force: true })) });
    },
  },
  {
    name: 'redis',
    open: () => {
      const redis = new Redis({ path: inject('redisSocket') });
      const prefix = `blobtest${randomBytes(4).toString('hex')}`;
      return Promise.resolve({
        store: new RedisBlobStore(redis, (k) => `${prefix}:blob:${k}`),
        close: async () => {
          const keys = await redis.keys(`${prefix}:*`);
          if (keys.length) await redis.del(...keys);
          redis.disconnect();
        },
      });
    },
  },
  {
    name: 's3',
    open: async () => {
      const s3: TestS3 = await startS3();
      // Parts of the minimum size, so a 12 MB blob goes up in three.
      const store = new S3BlobStore({ bucket: s3.bucket, prefix: 'deploy-a', endpoint: s3.endpoint, forcePathStyle: true, partBytes: 5 * 1024 * 1024, client: { credentials: s3.credentials } });
      return { store, close: async () => (store.close(), await s3.stop()) };
    },
  },
];

describe.each(adapters)('blob store: $name', ({ name, open }) => {
  let store: BlobStore;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ store, close } = await open());
  });
  afterAll(async () => {
    await close?.();
  });

  it('keeps bytes as written, answers undefined for a missing key, overwrites and deletes', async () => {
    const data = randomBytes(4096);
    await store.put('code/t1/fn/a1', data);
    expect((await store.get('code/t1/fn/a1'))?.equals(data)).toBe(true);
    expect(await store.get('code/t1/fn/missing')).toBeUndefined();
    await store.put('code/t1/fn/a1', Buffer.from('second'));
    expect((await store.get('code/t1/fn/a1'))?.toString()).toBe('second');
    await store.put('code/t1/fn/empty', Buffer.alloc(0));
    expect((await store.get('code/t1/fn/empty'))?.length).toBe(0);
    await store.delete('code/t1/fn/a1');
    await store.delete('code/t1/fn/a1');
    expect(await store.get('code/t1/fn/a1')).toBeUndefined();
  });

  it('stores a 12 MB blob whole', async () => {
    const data = randomBytes(12 * 1024 * 1024);
    await store.put('code/t1/big/b', data);
    expect((await store.get('code/t1/big/b'))?.equals(data)).toBe(true);
    await store.delete('code/t1/big/b');
  });

  it('deletes a folder\'s blobs and only those', async () => {
    for (const k of ['code/t2/f/1', 'code/t2/f/2', 'code/t2/g/1', 'code/t2/f2/1']) await store.put(k, Buffer.from(k));
    await store.deleteFolder('code/t2/f');
    expect(await store.get('code/t2/f/1')).toBeUndefined();
    expect(await store.get('code/t2/f/2')).toBeUndefined();
    expect((await store.get('code/t2/g/1'))?.toString()).toBe('code/t2/g/1');
    expect((await store.get('code/t2/f2/1'))?.toString()).toBe('code/t2/f2/1');
    await store.deleteFolder('code/t2/nothing-here');
  });

  it('refuses keys that could leave its space', async () => {
    for (const bad of ['../x', 'code/../../etc/passwd', '/etc/passwd', 'code//x', 'code/./x', 'code/x/', '', 'code/x\0y', 'code/x y', 'a'.repeat(600)]) {
      await expect(store.put(bad, Buffer.from('x')), bad).rejects.toThrow(/not a blob key/);
      await expect(store.get(bad), bad).rejects.toThrow(/not a blob key/);
      await expect(store.delete(bad), bad).rejects.toThrow(/not a blob key/);
    }
  });

  it(`deletes retired blobs once due, each once (${name})`, async () => {
    const redis = new Redis({ path: inject('redisSocket') });
    const set = `blobtest${randomBytes(4).toString('hex')}:retired`;
    try {
      const a = new BlobRetirements(redis, set, store);
      const b = new BlobRetirements(redis, set, store);
      await store.put('code/t3/f/old', Buffer.from('old'));
      await store.put('code/t3/f/later', Buffer.from('later'));
      await a.retire('code/t3/f/old', 0);
      await a.retire('code/t3/f/later', 3600);
      // Two replicas sweep at once: the due blob is deleted by one of them, the other is kept.
      const [x, y] = await Promise.all([a.sweep(), b.sweep()]);
      expect(x + y).toBe(1);
      expect(await store.get('code/t3/f/old')).toBeUndefined();
      expect((await store.get('code/t3/f/later'))?.toString()).toBe('later');
      expect(await a.sweep(Date.now() + 3601_000)).toBe(1);
      expect(await store.get('code/t3/f/later')).toBeUndefined();
    } finally {
      await redis.del(set);
      redis.disconnect();
    }
  });
});

describe('disk blob store on the host', () => {
  it('writes files only the control plane reads (0600 in 0700 folders), and leaves no temporary files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-blobs-'));
    try {
      const store = new DiskBlobStore(join(dir, 'blobs'));
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.put('code/t/f/same', Buffer.from(`writer ${i}`))));
      expect((await store.get('code/t/f/same'))?.toString()).toMatch(/^writer \d+$/);
      expect(readdirSync(join(dir, 'blobs/code/t/f'))).toEqual(['same']);
      expect(statSync(join(dir, 'blobs/code/t/f/same')).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'blobs/code/t/f')).mode & 0o777).toBe(0o700);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
