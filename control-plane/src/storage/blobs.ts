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
  /** Deletes the blob `seconds` from now; a `put` of the same key before then keeps it. */
  expire(key: string, seconds: number): Promise<void>;
  /** Deletes every blob in a folder (keys `<folder>/<name>`), those due to expire included. */
  deleteFolder(folder: string): Promise<void>;
}

/** `a/b/c` → `a/b`: the folder a key is listed in. */
function folderOf(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? '' : key.slice(0, i);
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

  /**
   * Each folder's keys are listed in a SET beside them (`<folder>/.index`, a name no blob of
   * Kiln's has), so a folder is deleted without a SCAN of the keyspace.
   */
  private indexOf(folder: string): string {
    return this.keyOf(`${folder}/.index`);
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.redis.multi().set(this.keyOf(key), data).sadd(this.indexOf(folderOf(key)), key).exec();
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(this.keyOf(key))) ?? undefined;
  }

  async delete(key: string): Promise<void> {
    await this.redis.multi().del(this.keyOf(key)).srem(this.indexOf(folderOf(key)), key).exec();
  }

  async deleteFolder(folder: string): Promise<void> {
    const index = this.indexOf(folder);
    const keys = await this.redis.smembers(index);
    // Listed keys that already expired are no-ops here.
    for (let i = 0; i < keys.length; i += 500) await this.redis.del(...keys.slice(i, i + 500).map((k) => this.keyOf(k)));
    await this.redis.del(index);
  }

  async expire(key: string, seconds: number): Promise<void> {
    // SET (put) clears a TTL, so a blob written again is kept.
    await this.redis.expire(this.keyOf(key), seconds);
  }
}
