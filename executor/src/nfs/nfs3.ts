/**
 * NFS program 100003 version 3: the procedure table and the dispatcher that
 * turns handler failures into nfsstat3 results.
 */
import { Nfs3Status, toNfsStatus } from './errors.js';
import { FAIL_ZEROS, type NfsCallContext, type NfsProc } from './nfs3-common.js';
import { create, mkdir, notSupported, remove, rename, rmdir, symlink } from './nfs3-namespace.js';
import { access, fsinfo, fsstat, getattr, lookup, pathconf, read, readlink } from './nfs3-read.js';
import { readdir, readdirplus } from './nfs3-readdir.js';
import { commit, setattr, write } from './nfs3-write.js';
import { XdrError, type XdrReader, XdrWriter } from './xdr.js';

export const NFS_PROGRAM = 100003;
export const NFS_V3 = 3;

const nullProc: NfsProc = () => Promise.resolve(new XdrWriter(0));

/** Indexed by procedure number (RFC 1813 §3.3). */
const PROCS: readonly NfsProc[] = [
  nullProc, // 0 NULL
  getattr, // 1
  setattr, // 2
  lookup, // 3
  access, // 4
  readlink, // 5
  read, // 6
  write, // 7
  create, // 8
  mkdir, // 9
  symlink, // 10
  notSupported, // 11 MKNOD
  remove, // 12
  rmdir, // 13
  rename, // 14
  notSupported, // 15 LINK
  readdir, // 16
  readdirplus, // 17
  fsstat, // 18
  fsinfo, // 19
  pathconf, // 20
  commit, // 21
];

/** Called with unexpected (SERVERFAULT) failures; the server points it at its logger. */
export type FaultLogger = (proc: number, err: unknown) => void;

/**
 * Runs NFSv3 procedure `proc`. Returns the encoded result, or undefined when
 * there is no such procedure (PROC_UNAVAIL). Rethrows {@link XdrError} so the
 * caller can answer GARBAGE_ARGS.
 */
export async function dispatchNfs3(ctx: NfsCallContext, proc: number, args: XdrReader, onFault?: FaultLogger): Promise<XdrWriter | undefined> {
  const fn = PROCS[proc];
  if (!fn) return undefined;
  try {
    return await fn(ctx, args);
  } catch (e) {
    if (e instanceof XdrError) throw e;
    const status = toNfsStatus(e);
    if (status === Nfs3Status.SERVERFAULT) onFault?.(proc, e);
    const w = new XdrWriter(32).u32(status);
    for (let i = 0; i < (FAIL_ZEROS[proc] ?? 0); i++) w.u32(0);
    return w;
  }
}
