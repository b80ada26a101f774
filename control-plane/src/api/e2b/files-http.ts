import { Readable } from 'node:stream';
import Busboy from 'busboy';
import { Hono, type Context } from 'hono';
import type { FileInfo } from '@kiln/proto/executor/files';
import type { SessionAgent } from '../../agent/session-client.js';
import { KilnError, ValidationError } from '../../errors.js';
import { streamed } from '../routes/file-transfer.js';
import type { AppEnv } from '../router.js';
import type { SandboxOpener } from './access.js';
import { DEFAULT_TENANT } from '../../tenancy/principal.js';
import type { UploadSlots } from '../upload-slots.js';
import { e2bError, onE2bError } from './errors.js';
import { fromWorkspace, toWorkspace } from './paths.js';

/** Files in one multipart upload. */
const MAX_PARTS = 1000;

/** envd's answer for a written file. */
const written = (f: FileInfo) => ({ name: f.name, type: 'file', path: fromWorkspace(f.path) });

/** A Node stream as the chunks `SessionAgent.upload` takes. */
async function* chunks(stream: Readable): AsyncGenerator<Uint8Array> {
  for await (const chunk of stream) yield chunk as Buffer;
}

/**
 * A multipart/form-data upload, streamed: each file part goes to the executor as it arrives,
 * one after another (a part must be read to reach the next). The target is the `path` query
 * when given (one file), else each part's file name, as envd does.
 */
function multipart(c: Context, agent: SessionAgent, path: string | undefined): Promise<FileInfo[]> {
  const body = c.req.raw.body;
  if (!body) throw new ValidationError('the upload has no body');
  return new Promise((resolve, reject) => {
    let bb: Busboy.Busboy;
    try {
      bb = Busboy({ headers: { 'content-type': c.req.header('content-type') ?? '' }, limits: { files: MAX_PARTS, fields: MAX_PARTS }, preservePath: true });
    } catch (err) {
      reject(new ValidationError(`the multipart upload cannot be read: ${(err as Error).message}`));
      return;
    }
    const results: FileInfo[] = [];
    let chain: Promise<void> = Promise.resolve();
    let failed: unknown;
    bb.on('file', (_field, stream, info) => {
      const target = path ?? info.filename;
      chain = chain.then(async () => {
        if (failed) return void stream.resume();
        if (!target) throw new ValidationError('a file part has no file name, and the query names no path');
        results.push(await agent.upload('file', toWorkspace(target), chunks(stream)));
      });
      // The first failure is the answer; later parts are read and dropped.
      chain = chain.catch((err: unknown) => {
        failed ??= err;
        stream.resume();
      });
    });
    bb.on('error', (err: Error) => reject(new ValidationError(`the multipart upload cannot be read: ${err.message}`)));
    bb.on('close', () => {
      void chain.then(() => (failed ? reject(failed as Error) : resolve(results)));
    });
    const input = Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>);
    // A client that goes mid-upload: busboy reports the cut stream as its own error.
    input.on('error', (err) => bb.destroy(err));
    input.pipe(bb);
  });
}

/**
 * envd's HTTP routes of a sandbox: `/files` (download; upload as octet-stream or multipart,
 * streamed both ways, any size the workspace holds) and `/health`. The access token decides,
 * as for the Connect services; errors are envd's `{ code, message }`.
 */
export function e2bFileRoutes(opener: SandboxOpener, prefix: string, uploads: UploadSlots): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError((err, c) => {
    // The workspace's hard size: the SDK's NotEnoughSpaceError.
    if (err instanceof KilnError && err.code === 'DiskQuotaExceeded') return e2bError(c, 507, `${err.code}: ${err.message}`);
    return onE2bError(err, c);
  });
  const open = (c: Context) => opener((n) => c.req.header(n));
  app.get(`${prefix}/health`, async (c) => {
    await open(c);
    return c.body(null, 204);
  });
  app.get(`${prefix}/files`, async (c) => {
    const path = c.req.query('path');
    if (!path) return e2bError(c, 400, 'path is required');
    const { agent } = await open(c);
    return streamed(agent.readFile(toWorkspace(path)), 'application/octet-stream');
  });
  app.post(`${prefix}/files`, async (c) => {
    const path = c.req.query('path') || undefined;
    const { agent, record } = await open(c);
    const type = c.req.header('content-type') ?? '';
    const tenant = record.tenant ?? DEFAULT_TENANT;
    if (type.startsWith('multipart/form-data')) return c.json((await uploads.run(tenant, () => multipart(c, agent, path))).map(written), 200);
    if (!path) return e2bError(c, 400, 'path is required for an application/octet-stream upload');
    if (c.req.header('content-encoding')) return e2bError(c, 400, `Kiln does not take compressed uploads (Content-Encoding: ${c.req.header('content-encoding')}); send the bytes as they are`);
    const body = c.req.raw.body;
    const info = await uploads.run(tenant, () => agent.upload('file', toWorkspace(path), body ? chunks(Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>)) : (async function* () {})()));
    return c.json([written(info)], 200);
  });
  return app;
}
