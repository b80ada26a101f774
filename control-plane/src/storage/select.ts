import type { Redis } from 'ioredis';
import type { BlobStoreConfig } from '../config.js';
import type { Keys } from '../store/keys.js';
import { RedisBlobStore, type BlobStore } from './blobs.js';
import { DiskBlobStore } from './disk-blobs.js';

/**
 * The blob store the configuration names (KILN_BLOB_STORE, KILN_S3_*). The S3 adapter, and the
 * AWS SDK with it, is loaded only when configured.
 */
export async function blobStoreFor(config: BlobStoreConfig, redis: Redis, keys: Keys): Promise<BlobStore> {
  switch (config.store) {
    case 'disk':
      return new DiskBlobStore(config.dir);
    case 'redis':
      return new RedisBlobStore(redis, (k) => keys.blob(k));
    case 's3': {
      const { S3BlobStore } = await import('./s3-blobs.js');
      return new S3BlobStore({ bucket: config.bucket, prefix: config.prefix, region: config.region, forcePathStyle: config.forcePathStyle, ...(config.endpoint ? { endpoint: config.endpoint } : {}) });
    }
  }
}
