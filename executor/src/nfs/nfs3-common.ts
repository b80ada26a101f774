/**
 * Pieces shared by the NFSv3 procedure modules: the per-call context,
 * argument decoders for handles and names, and small policy helpers.
 */
import { Nfs3Status, NfsError } from './errors.js';
import type { ExportRegistry, Resolved } from './exports.js';
import { NFS3_FHSIZE } from './handles.js';
import { isRoot } from '../fs/fsio.js';
import type { XdrReader, XdrWriter } from './xdr.js';
import type { ExportFs } from './vfs.js';
import type { AuthUnix } from './rpc.js';

/** Everything a procedure needs besides its arguments. */
export interface NfsCallContext {
  registry: ExportRegistry;
  /** Remote address of the connection, for allow-list checks. */
  client: string | undefined;
  /** WRITE/COMMIT verifier: fixed for the life of this server instance. */
  writeVerf: Buffer;
  /** Caller's AUTH_UNIX credentials, if any (informational). */
  cred?: AuthUnix;
}

/**
 * A procedure: decodes its arguments synchronously (an XdrError then becomes
 * GARBAGE_ARGS), does its work, and returns the encoded result starting with
 * NFS3_OK. Failures are thrown and encoded by the dispatcher.
 */
export type NfsProc = (ctx: NfsCallContext, args: XdrReader) => Promise<XdrWriter>;

/** Decodes nfs_fh3. */
export const readFh = (r: XdrReader): Buffer => r.opaque(NFS3_FHSIZE);

/** Decodes filename3. The protocol sets no bound; 1 KiB is generous and checkName enforces NAME_MAX. */
export const readName = (r: XdrReader): string => r.string(1024);

/** Decoded diropargs3. */
export interface DirOp {
  dir: Buffer;
  name: string;
}

export const readDirOp = (r: XdrReader): DirOp => ({ dir: readFh(r), name: readName(r) });

/** Resolves a handle on behalf of the calling client. */
export const resolveFh = (ctx: NfsCallContext, fh: Buffer): Promise<Resolved> => ctx.registry.fromHandle(fh, ctx.client);

/** Refuses mutations on read-only exports. */
export function assertWritable(efs: ExportFs): void {
  if (efs.exp.readOnly) throw new NfsError(Nfs3Status.ROFS);
}

/**
 * Mode bits a client may set: setuid/setgid are stripped so nothing created
 * over NFS can become a privilege-raising binary on the host.
 */
export const safeMode = (mode: number): number => mode & 0o1777;

/** uid/gid for new files: the export owner, applied only when we are able to (root). */
export function ownerFor(efs: ExportFs): { uid: number; gid: number } | undefined {
  return isRoot() ? { uid: efs.exp.uid, gid: efs.exp.gid } : undefined;
}

/** Ignores EPERM (not root) but lets other failures through. */
export function ignoreEperm(e: unknown): void {
  if ((e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
}

/**
 * How many optional-attribute discriminants follow the status in each
 * procedure's failure result (post_op_attr = 1, wcc_data = 2), indexed by
 * procedure number. Sending them all as FALSE is always valid.
 */
export const FAIL_ZEROS: readonly number[] = [
  0, // NULL
  0, // GETATTR
  2, // SETATTR wcc
  1, // LOOKUP dir attrs
  1, // ACCESS
  1, // READLINK
  1, // READ
  2, // WRITE wcc
  2, // CREATE dir wcc
  2, // MKDIR
  2, // SYMLINK
  2, // MKNOD
  2, // REMOVE
  2, // RMDIR
  4, // RENAME from+to wcc
  3, // LINK attrs + wcc
  1, // READDIR
  1, // READDIRPLUS
  1, // FSSTAT
  1, // FSINFO
  1, // PATHCONF
  2, // COMMIT
];
