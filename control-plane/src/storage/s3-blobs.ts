import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { checkBlobKey, type BlobStore } from './blobs.js';

export interface S3BlobOptions {
  bucket: string;
  /** Object names start with it (`kiln/` for `kiln/code/...`); empty for the bucket's root. */
  prefix?: string;
  /** A MinIO-style server's URL; AWS S3 when absent. */
  endpoint?: string;
  region?: string;
  /** `bucket` in the path rather than the host name: what most self-hosted S3 servers want. */
  forcePathStyle?: boolean;
  /** Objects larger than this go up in parts of this size (S3's minimum part is 5 MiB). */
  partBytes?: number;
  /** Credentials and the rest for tests; the SDK's usual chain (env, profile, IMDS) otherwise. */
  client?: Partial<S3ClientConfig>;
}

const DEFAULT_PART_BYTES = 16 * 1024 * 1024;
const MIN_PART_BYTES = 5 * 1024 * 1024;

/**
 * Blobs as objects in an S3 bucket (AWS S3, MinIO and other S3-compatible servers), through
 * the AWS SDK. Every replica on every host sees the same blobs. Objects above `partBytes` are
 * uploaded in parts (a failed upload is aborted, so no parts linger and cost storage).
 */
export class S3BlobStore implements BlobStore {
  readonly description: string;
  private readonly s3: S3Client;
  private readonly prefix: string;
  private readonly partBytes: number;

  constructor(private readonly opts: S3BlobOptions) {
    this.prefix = opts.prefix ? `${opts.prefix.replace(/\/+$/, '')}/` : '';
    this.partBytes = Math.max(MIN_PART_BYTES, opts.partBytes ?? DEFAULT_PART_BYTES);
    this.s3 = new S3Client({
      region: opts.region ?? 'us-east-1',
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle ?? false,
      ...opts.client,
    });
    this.description = `s3://${opts.bucket}/${this.prefix}`;
  }

  private name(key: string): string {
    return this.prefix + checkBlobKey(key);
  }

  async put(key: string, data: Buffer): Promise<void> {
    const Key = this.name(key);
    const Bucket = this.opts.bucket;
    if (data.length <= this.partBytes) {
      await this.s3.send(new PutObjectCommand({ Bucket, Key, Body: data, ContentLength: data.length }));
      return;
    }
    const { UploadId } = await this.s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    try {
      const parts: Array<{ ETag: string; PartNumber: number }> = [];
      for (let at = 0, n = 1; at < data.length; at += this.partBytes, n++) {
        const body = data.subarray(at, at + this.partBytes);
        const { ETag } = await this.s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: n, Body: body, ContentLength: body.length }));
        parts.push({ ETag: ETag ?? '', PartNumber: n });
      }
      await this.s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const out = await this.s3.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.name(key) }));
      return out.Body ? Buffer.from(await out.Body.transformToByteArray()) : Buffer.alloc(0);
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey' || (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.name(key) }));
  }

  async deleteFolder(folder: string): Promise<void> {
    const Prefix = `${this.name(folder)}/`;
    let ContinuationToken: string | undefined;
    do {
      // Delimiter '/': the folder's own objects, not those of deeper folders, as on the other adapters.
      const page = await this.s3.send(new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix, Delimiter: '/', ...(ContinuationToken ? { ContinuationToken } : {}) }));
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length) await this.s3.send(new DeleteObjectsCommand({ Bucket: this.opts.bucket, Delete: { Objects: keys, Quiet: true } }));
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  close(): void {
    this.s3.destroy();
  }
}
