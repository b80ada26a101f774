import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { createReadStream } from 'node:fs';
import { Kiln as CoreKiln } from '../client.js';
import { Functions, type DeployParams } from '../functions/functions.js';
import type { KilnOptions, RequestOptions } from '../http.js';
import type { FunctionInfo, FileInfo } from '../schema.js';
import type { Session } from '../sessions/session.js';

/** Names a folder deploy leaves out: VCS and editor litter. */
const SKIP = new Set(['.git', '.DS_Store']);

/** A folder's files, path (with `/`) → bytes and mode, for a zip. */
export async function readFolder(dir: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      if (SKIP.has(entry.name)) continue;
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files[relative(dir, path).split(sep).join('/')] = await readFile(path);
    }
  };
  if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
  await walk(dir);
  return files;
}

/** `kiln.functions` with `deploy(dir, params)`: zips a folder. */
export class NodeFunctions extends Functions {
  /** Deploys a folder (zipped, Lambda layout: the handler module at its root), or params as the core does. */
  override deploy(dirOrParams: string | DeployParams, params?: Omit<DeployParams, 'files' | 'zip'> & RequestOptions): Promise<FunctionInfo>;
  override async deploy(dirOrParams: string | DeployParams, params?: (Omit<DeployParams, 'files' | 'zip'> & RequestOptions) | RequestOptions): Promise<FunctionInfo> {
    if (typeof dirOrParams !== 'string') return super.deploy(dirOrParams, params);
    const { signal, ...rest } = (params ?? {}) as Omit<DeployParams, 'files' | 'zip'> & RequestOptions;
    return super.deploy({ ...rest, files: await readFolder(dirOrParams) }, { signal });
  }
}

/** The client with Node helpers: `functions.deploy(dir, ...)`, `uploadFile`, `downloadFile`. */
export class Kiln extends CoreKiln {
  override readonly functions: NodeFunctions;
  constructor(opts: KilnOptions = {}) {
    super(opts);
    this.functions = new NodeFunctions(this.http);
  }
}

/** Streams a local file into the session (never held in memory whole). */
export async function uploadFile(session: Session, localPath: string, remotePath: string, opts: RequestOptions = {}): Promise<FileInfo> {
  const body = Readable.toWeb(createReadStream(localPath)) as ReadableStream<Uint8Array>;
  return session.files.upload(remotePath, body, opts);
}

/** Streams a session's file to a local path. */
export async function downloadFile(session: Session, remotePath: string, localPath: string, opts: RequestOptions = {}): Promise<void> {
  const { createWriteStream } = await import('node:fs');
  const { pipeline } = await import('node:stream/promises');
  const stream = await session.files.download(remotePath, opts);
  await pipeline(Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>), createWriteStream(localPath), opts.signal ? { signal: opts.signal } : {});
}
