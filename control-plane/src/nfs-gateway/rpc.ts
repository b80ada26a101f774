/**
 * Just enough of ONC RPC (RFC 5531), MOUNT v3 and NFSv3 (RFC 1813) for the gateway to decide
 * where a call goes: the call header, the mount path of MNT, the file handle that starts the
 * arguments of every NFS procedure, and the few replies the gateway answers itself.
 */

export const NFS_PROGRAM = 100003;
export const MOUNT_PROGRAM = 100005;
/** Both programs are served in version 3 only, like the executors serve them. */
export const VERSION_3 = 3;

/** mountstat3 values the gateway answers with. */
export const MNT3ERR_NOENT = 2;
export const MNT3ERR_IO = 5;
export const MNT3ERR_ACCES = 13;
/** nfsstat3 values the gateway answers with. */
export const NFS3ERR_IO = 5;
export const NFS3ERR_ACCES = 13;
export const NFS3ERR_STALE = 70;
export const NFS3ERR_BADHANDLE = 10001;

/** accept_stat values. */
export const PROG_UNAVAIL = 1;
export const PROG_MISMATCH = 2;
export const PROC_UNAVAIL = 3;
export const GARBAGE_ARGS = 4;

/** Longest MOUNT dirpath (MNTPATHLEN) and NFSv3 handle (NFS3_FHSIZE). */
const MNTPATHLEN = 1024;
const FHSIZE = 64;
const MAX_AUTH_BYTES = 400;

/** A call header, with the offset where the procedure's arguments start. */
export interface CallHeader {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  argsAt: number;
}

/** The record is not an RPC call the gateway can read; the connection is closed. */
export class RpcParseError extends Error {
  override name = 'RpcParseError';
}

function u32(rec: Buffer, at: number): number {
  if (at + 4 > rec.length) throw new RpcParseError('record ends inside the call header');
  return rec.readUInt32BE(at);
}

/** Reads an XDR opaque<max> at `at`; returns its bytes and the offset after its padding. */
function opaque(rec: Buffer, at: number, max: number): { data: Buffer; next: number } {
  const len = u32(rec, at);
  if (len > max) throw new RpcParseError(`opaque of ${len} bytes where at most ${max} are allowed`);
  const start = at + 4;
  const next = start + len + ((4 - (len % 4)) % 4);
  if (next > rec.length) throw new RpcParseError('record ends inside an opaque field');
  return { data: rec.subarray(start, start + len), next };
}

/** Decodes the call header; throws {@link RpcParseError} for anything but a well-formed v2 call. */
export function parseCallHeader(rec: Buffer): CallHeader {
  const xid = u32(rec, 0);
  if (u32(rec, 4) !== 0) throw new RpcParseError('not an RPC call');
  if (u32(rec, 8) !== 2) throw new RpcParseError('not ONC RPC version 2');
  const prog = u32(rec, 12);
  const vers = u32(rec, 16);
  const proc = u32(rec, 20);
  const cred = opaque(rec, 28, MAX_AUTH_BYTES); // flavor at 24, body after it
  const verf = opaque(rec, cred.next + 4, MAX_AUTH_BYTES);
  return { xid, prog, vers, proc, argsAt: verf.next };
}

/**
 * The session a MOUNT dirpath names: its first component ("/<session-id>/sub" → session id),
 * or undefined when the path cannot name one (the gateway then answers NOENT).
 */
export function mountPathSession(rec: Buffer, call: CallHeader): string | undefined {
  const path = opaque(rec, call.argsAt, MNTPATHLEN).data.toString('utf8');
  const first = path.split('/').find((p) => p !== '' && p !== '.');
  return first !== undefined && /^[A-Za-z0-9_-]{1,128}$/.test(first) ? first : undefined;
}

/**
 * The export tag (hex) of the handle that starts an NFS procedure's arguments, or undefined
 * when the handle does not have the executors' layout: version(1)=1 | exportTag(8) | dev(8) |
 * ino(8) | mac(16) (executor/src/nfs/handles.ts).
 */
export function handleTag(rec: Buffer, call: CallHeader): string | undefined {
  const fh = opaque(rec, call.argsAt, FHSIZE).data;
  if (fh.length !== 41 || fh[0] !== 1) return undefined;
  return fh.subarray(1, 9).toString('hex');
}

/**
 * Words of FALSE that follow the status in each NFSv3 procedure's failure arm (RFC 1813):
 * 0 for GETATTR; 1 (post_op_attr) for LOOKUP, ACCESS, READLINK, READ, READDIR(PLUS), FSSTAT,
 * FSINFO, PATHCONF; 2 (wcc_data) for SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE,
 * RMDIR, COMMIT; 4 for RENAME (two wcc_data); 3 for LINK (post_op_attr + wcc_data).
 */
const FAIL_ARM_WORDS = [0, 0, 2, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 4, 3, 1, 1, 1, 1, 1, 2];

/** True for NFSv3 procedures 1-21, all of which start with a file handle. */
export function isHandleProcedure(proc: number): boolean {
  return proc >= 1 && proc < FAIL_ARM_WORDS.length;
}

/** An accepted reply with `stat` and the given result words. */
function accepted(xid: number, stat: number, words: number[]): Buffer {
  const b = Buffer.alloc(24 + 4 * words.length);
  b.writeUInt32BE(xid, 0);
  b.writeUInt32BE(1, 4); // REPLY
  b.writeUInt32BE(0, 8); // MSG_ACCEPTED; verifier AUTH_NONE with empty body at 12 and 16
  b.writeUInt32BE(stat, 20);
  words.forEach((w, i) => b.writeUInt32BE(w >>> 0, 24 + 4 * i));
  return b;
}

/** SUCCESS with results made of plain words (void, a status, a FALSE list end). */
export function successReply(xid: number, words: number[] = []): Buffer {
  return accepted(xid, 0, words);
}

/** An NFSv3 failure (`status`) with the procedure's empty failure arm. */
export function nfsFailureReply(xid: number, proc: number, status: number): Buffer {
  return accepted(xid, 0, [status, ...new Array<number>(FAIL_ARM_WORDS[proc] ?? 0).fill(0)]);
}

/** PROG_UNAVAIL, PROC_UNAVAIL or GARBAGE_ARGS. */
export function acceptErrorReply(xid: number, stat: number): Buffer {
  return accepted(xid, stat, []);
}

/** PROG_MISMATCH naming version 3 as the only one served. */
export function progMismatchReply(xid: number): Buffer {
  return accepted(xid, PROG_MISMATCH, [VERSION_3, VERSION_3]);
}
