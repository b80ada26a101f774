import type { Redis } from 'ioredis';

/**
 * Opaque byte objects addressed by key: function code packages today, files and workspace
 * snapshots later. One interface so an S3 adapter can replace the Redis one without
 * touching its callers.
 */
export interface BlobStore {
  put(key: string, data: Buffer): Promise<void>;
  /** The bytes, or undefined when no blob has that key. */
  get(key: string): Promise<Buffer | undefined>;
  delete(key: string): Promise<void>;
}

/**
 * Blobs as Redis strings. Every replica sees the same blobs without a shared disk, and they
 * share Redis's persistence; the cost is Redis memory, which is why code packages are capped.
 */
export class RedisBlobStore implements BlobStore {
  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (key: string) => string,
  ) {}

  async put(key: string, data: Buffer): Promise<void> {
    await this.redis.set(this.keyOf(key), data);
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(this.keyOf(key))) ?? undefined;
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(this.keyOf(key));
  }
}
