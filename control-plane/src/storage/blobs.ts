import type { Redis } from 'ioredis';
import { ValidationError } from '../errors.js';

/**
 * Opaque byte objects addressed by key: function code packages today, files and workspace
 * snapshots later. One small interface with three adapters (storage/select.ts picks one):
 * local disk under the data directory (the default), S3-compatible object storage, and Redis
 * (for several replicas on several hosts without S3). Keys are Kiln's own (`code/<tenant>/
 * <function>/<hash>`), never a client's; every adapter still refuses a key that could name
 * something outside its space (`checkBlobKey`).
 */
export interface BlobStore {
  /** Where blobs live, for logs and /health: `disk:/path`, `s3://bucket/prefix`, `redis`. */
  readonly description: string;
  put(key: string, data: Buffer): Promise<void>;
  /** The bytes, or undefined when no blob has that key. */
  get(key: string): Promise<Buffer | undefined>;
  /** Deletes a blob; a missing one is no error. */
  delete(key: string): Promise<void>;
  /** Deletes every blob in a folder (keys `<folder>/<name>`, not deeper). */
  deleteFolder(folder: string): Promise<void>;
  /** Lets go of connections (the S3 client's); the others hold none of their own. */
  close?(): void;
}

/**
 * Path segments of letters, digits and `._=-` (a tenant id, a function name, a hex hash), none
 * of them `.` or `..`, no leading, trailing or double slash. On disk a key is a path below the
 * store's root and on S3 an object name below its prefix: this keeps both inside.
 */
const KEY = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9._=-]+(?:\/[A-Za-z0-9._=-]+)*$/;

export function checkBlobKey(key: string): string {
  if (key.length > 512 || !KEY.test(key)) throw new ValidationError(`not a blob key: ${JSON.stringify(key.slice(0, 80))}`, { field: 'key' });
  return key;
}

/** `a/b/c` → `a/b`: the folder a key is listed in. */
export function folderOf(key: string): string {
  const i = key.lastIndexOf('/');
  return i < 0 ? '' : key.slice(0, i);
}

/**
 * Blobs as Redis strings. Every replica sees the same blobs without a shared disk, and they
 * share Redis's persistence; the cost is Redis memory. Chosen with KILN_BLOB_STORE=redis.
 */
export class RedisBlobStore implements BlobStore {
  readonly description = 'redis';

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
    checkBlobKey(key);
    await this.redis.multi().set(this.keyOf(key), data).sadd(this.indexOf(folderOf(key)), key).exec();
  }

  async get(key: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(this.keyOf(checkBlobKey(key)))) ?? undefined;
  }

  async delete(key: string): Promise<void> {
    checkBlobKey(key);
    await this.redis.multi().del(this.keyOf(key)).srem(this.indexOf(folderOf(key)), key).exec();
  }

  async deleteFolder(folder: string): Promise<void> {
    const index = this.indexOf(checkBlobKey(folder));
    const keys = await this.redis.smembers(index);
    for (let i = 0; i < keys.length; i += 500) await this.redis.del(...keys.slice(i, i + 500).map((k) => this.keyOf(k)));
    await this.redis.del(index);
  }
}
