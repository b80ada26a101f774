import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// s3rver ships no types: the little this file uses is typed here.
// eslint-disable-next-line @typescript-eslint/ban-ts-comment
// @ts-ignore
import S3rver from 's3rver';

/** An S3 API server for a test: s3rver (npm), on loopback, with one bucket, files in a temporary directory. */
export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** s3rver's one account; it checks SigV4 signatures with it. */
  credentials: { accessKeyId: string; secretAccessKey: string };
  stop(): Promise<void>;
}

interface S3rverServer {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

export async function startS3(bucket = 'kiln-test'): Promise<TestS3> {
  const directory = mkdtempSync(join(tmpdir(), 'kiln-s3-'));
  const Server = S3rver as unknown as new (opts: object) => S3rverServer;
  const server = new Server({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    async stop() {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
