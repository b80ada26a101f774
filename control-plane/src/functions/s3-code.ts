import type { S3Client } from '@aws-sdk/client-s3';
import { KilnError, ValidationError } from '../errors.js';
import { isAdmin, type Principal } from '../tenancy/principal.js';

/** Lambda's own limit for a zip uploaded through S3 is 50 MB zipped as well. */
const MAX_ZIP_BYTES = 50 * 1024 * 1024;

export interface LambdaS3Config {
  /** KILN_LAMBDA_S3_BUCKETS: the only buckets Code.S3Bucket may name; empty: S3 code is off. */
  buckets: string[];
  /** KILN_LAMBDA_S3_ENDPOINT: an S3-compatible server; unset: AWS S3. */
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
}

/** Where a function's zip is: Lambda's Code.S3Bucket / S3Key / S3ObjectVersion. */
export interface S3CodeLocation {
  bucket: string;
  key: string;
  version?: string | undefined;
}

/**
 * Reads a function's zip from S3 for CreateFunction / UpdateFunctionCode (`Code.S3Bucket`,
 * `S3Key`, `S3ObjectVersion`), with credentials from the AWS SDK's usual chain. This is a client
 * of its own, not the blob store's: the blob store's bucket holds every tenant's packages, and
 * Kiln's credentials read whatever they can, so a tenant naming buckets and keys must be held to
 * what the operator opened. Two barriers: only buckets in KILN_LAMBDA_S3_BUCKETS, and, for a key
 * that is not an administrator's, only keys under the caller's tenant (`<tenant>/...`), so one
 * tenant cannot deploy (and then read back through GetFunction) another's zip.
 */
export class S3CodeSource {
  private client?: Promise<S3Client>;

  constructor(private readonly config: LambdaS3Config) {}

  private s3(): Promise<S3Client> {
    this.client ??= import('@aws-sdk/client-s3').then(
      ({ S3Client: Client }) => new Client({ region: this.config.region, forcePathStyle: this.config.forcePathStyle, ...(this.config.endpoint ? { endpoint: this.config.endpoint } : {}) }),
    );
    return this.client;
  }

  /** The zip's bytes; InvalidParameterValueException (400) naming S3's error code when it cannot be read. */
  async fetch(who: Principal, where: S3CodeLocation): Promise<Buffer> {
    if (this.config.buckets.length === 0) throw new ValidationError('Code.S3Bucket is not enabled on this deployment (KILN_LAMBDA_S3_BUCKETS is empty); send Code.ZipFile', { field: 'S3Bucket' });
    if (!this.config.buckets.includes(where.bucket)) throw new ValidationError(`Code.S3Bucket "${where.bucket.slice(0, 63)}" is not one of the buckets this deployment reads code from (KILN_LAMBDA_S3_BUCKETS)`, { field: 'S3Bucket' });
    if (!where.key) throw new ValidationError('Code.S3Key is required with Code.S3Bucket', { field: 'S3Key' });
    // A `.` or `..` segment would be resolved by URL handling on the way to S3 (the SDK and
    // servers such as s3rver do): "alpha/../beta/x.zip" is read as "beta/x.zip".
    if (where.key.split('/').some((seg) => seg === '.' || seg === '..') || where.key.includes('\\')) {
      throw new ValidationError(`Code.S3Key must not have "." or ".." segments or backslashes; got "${where.key.slice(0, 200)}"`, { field: 'S3Key' });
    }
    if (!isAdmin(who) && !where.key.startsWith(`${who.tenant}/`)) {
      throw new ValidationError(`Code.S3Key must be under your tenant's folder "${who.tenant}/"; got "${where.key.slice(0, 200)}"`, { field: 'S3Key' });
    }
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
    const s3 = await this.s3();
    let out;
    try {
      out = await s3.send(new GetObjectCommand({ Bucket: where.bucket, Key: where.key, ...(where.version ? { VersionId: where.version } : {}) }));
    } catch (err) {
      const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
      const status = e.$metadata?.httpStatusCode;
      // S3 answered: the caller's location is wrong (Lambda says the same: "Error occurred while GetObject").
      if (status !== undefined && status < 500) throw new ValidationError(`Error occurred while GetObject. S3 Error Code: ${e.name ?? status}. S3 Error Message: could not read s3://${where.bucket}/${where.key.slice(0, 200)}`, { field: 'S3Key' });
      throw new KilnError('ServiceUnavailable', 503, `S3 could not be reached to read the code: ${(err as Error).message}`, { retryAfterSeconds: 1 }, true);
    }
    if ((out.ContentLength ?? 0) > MAX_ZIP_BYTES) throw new ValidationError(`the zip at s3://${where.bucket}/${where.key.slice(0, 200)} is larger than ${MAX_ZIP_BYTES} bytes`, { field: 'S3Key' });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of out.Body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > MAX_ZIP_BYTES) throw new ValidationError(`the zip at s3://${where.bucket}/${where.key.slice(0, 200)} is larger than ${MAX_ZIP_BYTES} bytes`, { field: 'S3Key' });
      chunks.push(Buffer.from(chunk));
    }
    return Buffer.concat(chunks);
  }
}
