/**
 * NFSv3 procedures that change file contents or attributes: SETATTR, WRITE,
 * COMMIT. Namespace changes (create/remove/rename) are in nfs3-namespace.ts.
 */
import { promises as fsp } from 'node:fs';
import { type Sattr, readSattr, setTimeSeconds, writeWcc } from './attrs.js';
import { Nfs3Status, NfsError } from './errors.js';
import { fdatasyncFd, fstatFd, ftruncateFd, inodeKey, isRoot, lstatPath, procPath, pwriteFd } from '../fs/fsio.js';
import { type NfsProc, assertWritable, readFh, resolveFh, safeMode } from './nfs3-common.js';
import { MAX_IO } from './nfs3-read.js';
import type { ExportFs } from './vfs.js';
import { XdrWriter } from './xdr.js';

/** stable_how values. */
export const Stable = { UNSTABLE: 0, DATA_SYNC: 1, FILE_SYNC: 2 } as const;

const OK = (): XdrWriter => new XdrWriter().u32(Nfs3Status.OK);

/**
 * Ownership changes are limited to the export's own uid/gid (or leaving them
 * as they are): a client must not be able to plant root-owned files.
 */
function checkOwner(efs: ExportFs, want: number | undefined, current: bigint, own: number): boolean {
  if (want === undefined || BigInt(want) === current) return false;
  if (want !== own) throw new NfsError(Nfs3Status.PERM, 'ownership may only be given to the export owner');
  return true;
}

/**
 * Applies a sattr3 to inode `key`. Regular files and directories are changed
 * through their pinned fd's proc path (which names exactly that inode);
 * symlinks, which such paths would traverse, through l*() calls on their name.
 */
export async function applySattr(efs: ExportFs, key: string, s: Sattr, guardCtimeNs?: bigint): Promise<void> {
  const lease = await efs.pathFd(key);
  try {
    const st = await fstatFd(lease.fd);
    if (guardCtimeNs !== undefined && st.ctimeNs !== guardCtimeNs) throw new NfsError(Nfs3Status.NOT_SYNC);
    const p = procPath(lease.fd);
    const isLink = st.isSymbolicLink();
    const byName = async (fn: (path: string) => Promise<void>): Promise<void> => {
      const { parent, name } = efs.locate(key);
      await efs.inDir(parent, async (dirPath) => {
        if (inodeKey(await lstatPath(`${dirPath}/${name}`)) !== key) throw new NfsError(Nfs3Status.STALE);
        await fn(`${dirPath}/${name}`);
      });
    };

    const chUid = checkOwner(efs, s.uid, st.uid, efs.exp.uid);
    const chGid = checkOwner(efs, s.gid, st.gid, efs.exp.gid);
    if (chUid || chGid) {
      const uid = chUid ? efs.exp.uid : -1;
      const gid = chGid ? efs.exp.gid : -1;
      if (!isRoot()) throw new NfsError(Nfs3Status.PERM);
      if (isLink) await byName((path) => fsp.lchown(path, uid, gid));
      else await fsp.chown(p, uid, gid);
    }
    if (s.mode !== undefined && !isLink) await fsp.chmod(p, safeMode(s.mode));
    if (s.size !== undefined) {
      if (st.isDirectory()) throw new NfsError(Nfs3Status.ISDIR);
      if (!st.isFile()) throw new NfsError(Nfs3Status.INVAL);
      if (s.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new NfsError(Nfs3Status.FBIG);
      const d = await efs.dataFd(key, true);
      try {
        await ftruncateFd(d.fd, Number(s.size));
      } finally {
        d.release();
      }
    }
    if (s.atime || s.mtime) {
      const at = s.atime ? setTimeSeconds(s.atime) : Number(st.atimeNs) / 1e9;
      const mt = s.mtime ? setTimeSeconds(s.mtime) : Number(st.mtimeNs) / 1e9;
      if (isLink) await byName((path) => fsp.lutimes(path, at, mt));
      else await fsp.utimes(p, at, mt);
    }
  } finally {
    lease.release();
  }
}

export const setattr: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const s = readSattr(r);
  const guard = r.bool() ? BigInt(r.u32()) * 1_000_000_000n + BigInt(r.u32()) : undefined;
  const { efs, key } = await resolveFh(ctx, fh);
  assertWritable(efs);
  await applySattr(efs, key, s, guard);
  const st = await efs.tryStat(key);
  const w = OK();
  writeWcc(w, st, efs.fsid(st?.dev ?? 0n));
  return w;
};

export const write: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const offset = r.u64();
  const count = r.u32();
  const stable = r.u32();
  const data = r.opaque(MAX_IO);
  const n = Math.min(count, data.length);
  const { efs, key } = await resolveFh(ctx, fh);
  assertWritable(efs);
  if (offset + BigInt(n) > BigInt(Number.MAX_SAFE_INTEGER)) throw new NfsError(Nfs3Status.FBIG);
  const lease = await efs.dataFd(key, true);
  try {
    await pwriteFd(lease.fd, data.subarray(0, n), Number(offset));
    if (stable !== Stable.UNSTABLE) await fdatasyncFd(lease.fd);
    const st = await fstatFd(lease.fd);
    if (st.nlink === 0n) {
      efs.forget(key);
      throw new NfsError(Nfs3Status.STALE);
    }
    const w = OK();
    writeWcc(w, st, efs.fsid(st.dev));
    return w
      .u32(n)
      .u32(stable === Stable.UNSTABLE ? Stable.UNSTABLE : Stable.FILE_SYNC)
      .fixed(ctx.writeVerf);
  } finally {
    lease.release();
  }
};

export const commit: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  r.u64(); // offset and count: we always flush the whole file
  r.u32();
  const { efs, key } = await resolveFh(ctx, fh);
  const st0 = await efs.stat(key);
  if (st0.isFile()) {
    const lease = await efs.dataFd(key, false);
    try {
      await fdatasyncFd(lease.fd);
    } finally {
      lease.release();
    }
  }
  const st = await efs.tryStat(key);
  const w = OK();
  writeWcc(w, st, efs.fsid(st?.dev ?? 0n));
  return w.fixed(ctx.writeVerf);
};
