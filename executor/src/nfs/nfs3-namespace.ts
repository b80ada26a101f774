/**
 * NFSv3 procedures that change the namespace: CREATE, MKDIR, SYMLINK, REMOVE,
 * RMDIR, RENAME (MKNOD and LINK are refused with NOTSUPP).
 *
 * Every name is resolved inside its directory's pinned fd and with calls that
 * never follow a final symlink (O_NOFOLLOW, O_EXCL, mkdir, symlink, unlink,
 * rename, l*()), so a link planted by the sandbox cannot redirect a create or
 * a chown outside the export.
 */
import { type BigIntStats, promises as fsp, fchmod, fchown, futimes } from 'node:fs';
import { promisify } from 'node:util';
import { type Sattr, readSattr, setTimeSeconds, writePostOpAttr, writeWcc } from './attrs.js';
import { Nfs3Status, NfsError } from './errors.js';
import {
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDWR,
  closeFd,
  fstatFd,
  ftruncateFd,
  inodeKey,
  lstatPath,
  openFd,
  procPath,
} from '../fs/fsio.js';
import { type NfsCallContext, type NfsProc, assertWritable, ignoreEperm, ownerFor, readDirOp, readFh, resolveFh, safeMode } from './nfs3-common.js';
import { TARGET_MAX, depthOf, targetStaysInside } from './symlinks.js';
import { type ExportFs, checkName } from './vfs.js';
import { XdrError, XdrWriter } from './xdr.js';

const fchownP = promisify(fchown);
const fchmodP = promisify(fchmod);
const futimesP = promisify(futimes);

const CreateMode = { UNCHECKED: 0, GUARDED: 1, EXCLUSIVE: 2 } as const;

/** Names a new entry may not have. */
function checkNewName(name: string): void {
  if (name === '.' || name === '..') throw new NfsError(Nfs3Status.EXIST);
  checkName(name);
}

/** Names an existing entry to remove or rename may not have. */
function checkOldName(name: string): void {
  if (name === '.' || name === '..') throw new NfsError(Nfs3Status.INVAL);
  checkName(name);
}

/** Encodes the shared CREATE/MKDIR/SYMLINK result. */
async function created(ctx: NfsCallContext, efs: ExportFs, dir: string, key: string, st: BigIntStats): Promise<XdrWriter> {
  const dirSt = await efs.tryStat(dir);
  const w = new XdrWriter().u32(Nfs3Status.OK).bool(true).opaque(ctx.registry.handle(efs, key));
  writePostOpAttr(w, st, efs.fsid(st.dev));
  writeWcc(w, dirSt, efs.fsid(dirSt?.dev ?? 0n));
  return w;
}

/** EXCLUSIVE create keeps the client's verifier in atime/mtime seconds, like Linux knfsd. */
const verfMatches = (st: BigIntStats, verf: Buffer): boolean =>
  st.atimeNs / 1_000_000_000n === BigInt(verf.readUInt32BE(0)) && st.mtimeNs / 1_000_000_000n === BigInt(verf.readUInt32BE(4));

/** Applies size and times through an open fd. */
async function applyToFd(fd: number, s: Sattr, st: BigIntStats): Promise<void> {
  if (s.size !== undefined) await ftruncateFd(fd, Number(s.size));
  if (s.atime || s.mtime) {
    const at = s.atime ? setTimeSeconds(s.atime) : Number(st.atimeNs) / 1e9;
    const mt = s.mtime ? setTimeSeconds(s.mtime) : Number(st.mtimeNs) / 1e9;
    await futimesP(fd, at, mt);
  }
}

export const create: NfsProc = async (ctx, r) => {
  const { dir, name } = readDirOp(r);
  const how = r.u32();
  let s: Sattr = {};
  let verf: Buffer | undefined;
  if (how === CreateMode.UNCHECKED || how === CreateMode.GUARDED) s = readSattr(r);
  else if (how === CreateMode.EXCLUSIVE) verf = Buffer.from(r.fixed(8));
  else throw new XdrError(`bad createmode ${how}`);
  if (s.size !== undefined && s.size > BigInt(Number.MAX_SAFE_INTEGER)) throw new NfsError(Nfs3Status.FBIG);
  const { efs, key: dirKey } = await resolveFh(ctx, dir);
  assertWritable(efs);
  checkNewName(name);

  const { fd, fresh } = await efs.inDir(dirKey, async (dirPath) => {
    const path = `${dirPath}/${name}`;
    try {
      const mode = s.mode !== undefined ? safeMode(s.mode) : 0o644;
      return { fd: await openFd(path, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_NONBLOCK, mode), fresh: true };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || how === CreateMode.GUARDED) throw e;
      // Only an existing regular file may be reused; it is never opened otherwise.
      const old = await lstatPath(path);
      if (!old.isFile()) throw new NfsError(Nfs3Status.EXIST);
      if (verf && !verfMatches(old, verf)) throw new NfsError(Nfs3Status.EXIST);
      return { fd: await openFd(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK), fresh: false };
    }
  });
  let st: BigIntStats;
  let key: string;
  try {
    st = await fstatFd(fd);
    if (!st.isFile()) throw new NfsError(Nfs3Status.EXIST);
    key = efs.register(dirKey, name, st);
    if (fresh) {
      const owner = ownerFor(efs);
      if (owner) await fchownP(fd, owner.uid, owner.gid).catch(ignoreEperm);
      // The process umask applied at open; set the exact mode the client asked for.
      if (s.mode !== undefined) await fchmodP(fd, safeMode(s.mode));
      if (verf) await futimesP(fd, verf.readUInt32BE(0), verf.readUInt32BE(4));
      else await applyToFd(fd, s, st);
    } else if (!verf && s.size !== undefined) {
      await ftruncateFd(fd, Number(s.size));
    }
    st = await fstatFd(fd);
  } catch (e) {
    await closeFd(fd);
    throw e;
  }
  // Keep the fd: the client's WRITEs to this new file follow immediately.
  efs.data.put(key, fd, 1).release();
  return created(ctx, efs, dirKey, key, st);
};

export const mkdir: NfsProc = async (ctx, r) => {
  const { dir, name } = readDirOp(r);
  const s = readSattr(r);
  const { efs, key: dirKey } = await resolveFh(ctx, dir);
  assertWritable(efs);
  checkNewName(name);
  const fd = await efs.inDir(dirKey, async (dirPath) => {
    const path = `${dirPath}/${name}`;
    await fsp.mkdir(path, safeMode(s.mode ?? 0o755));
    return openFd(path, O_PATH | O_NOFOLLOW | O_DIRECTORY);
  });
  let st: BigIntStats;
  try {
    st = await fstatFd(fd);
  } catch (e) {
    await closeFd(fd);
    throw e;
  }
  const key = efs.register(dirKey, name, st);
  const lease = efs.paths.put(key, fd);
  try {
    // The proc path of an O_PATH directory fd names exactly that directory.
    const p = procPath(lease.fd);
    const owner = ownerFor(efs);
    if (owner) await fsp.chown(p, owner.uid, owner.gid).catch(ignoreEperm);
    if (s.mode !== undefined) await fsp.chmod(p, safeMode(s.mode));
    if (s.atime || s.mtime) {
      const at = s.atime ? setTimeSeconds(s.atime) : Number(st.atimeNs) / 1e9;
      const mt = s.mtime ? setTimeSeconds(s.mtime) : Number(st.mtimeNs) / 1e9;
      await fsp.utimes(p, at, mt);
    }
    st = await fstatFd(lease.fd);
  } finally {
    lease.release();
  }
  return created(ctx, efs, dirKey, key, st);
};

export const symlink: NfsProc = async (ctx, r) => {
  const { dir, name } = readDirOp(r);
  readSattr(r); // symlink modes are meaningless on Linux; ownership is the export's
  const target = r.string(TARGET_MAX);
  const { efs, key: dirKey } = await resolveFh(ctx, dir);
  assertWritable(efs);
  checkNewName(name);
  if (!targetStaysInside(await depthOf(efs, dirKey), target)) {
    throw new NfsError(Nfs3Status.ACCES, 'symlink target would leave the export');
  }
  const st = await efs.inDir(dirKey, async (dirPath) => {
    const path = `${dirPath}/${name}`;
    await fsp.symlink(target, path);
    const owner = ownerFor(efs);
    if (owner) await fsp.lchown(path, owner.uid, owner.gid).catch(ignoreEperm);
    return lstatPath(path);
  });
  const key = efs.register(dirKey, name, st);
  return created(ctx, efs, dirKey, key, st);
};

/** Shared body of REMOVE and RMDIR. */
async function removeEntry(ctx: NfsCallContext, r: Parameters<NfsProc>[1], isDir: boolean): Promise<XdrWriter> {
  const { dir, name } = readDirOp(r);
  const { efs, key: dirKey } = await resolveFh(ctx, dir);
  assertWritable(efs);
  checkOldName(name);
  await efs.inDir(dirKey, async (dirPath) => {
    const path = `${dirPath}/${name}`;
    const st = await lstatPath(path);
    if (isDir && !st.isDirectory()) throw new NfsError(Nfs3Status.NOTDIR);
    if (!isDir && st.isDirectory()) throw new NfsError(Nfs3Status.ISDIR);
    await (isDir ? fsp.rmdir(path) : fsp.unlink(path));
    efs.forget(inodeKey(st));
  });
  const dirSt = await efs.tryStat(dirKey);
  const w = new XdrWriter().u32(Nfs3Status.OK);
  writeWcc(w, dirSt, efs.fsid(dirSt?.dev ?? 0n));
  return w;
}

export const remove: NfsProc = (ctx, r) => removeEntry(ctx, r, false);
export const rmdir: NfsProc = (ctx, r) => removeEntry(ctx, r, true);

export const rename: NfsProc = async (ctx, r) => {
  const from = readDirOp(r);
  const to = readDirOp(r);
  const a = await resolveFh(ctx, from.dir);
  const b = await resolveFh(ctx, to.dir);
  // Two exports (sessions) never share a namespace, whatever the host layout.
  if (a.efs !== b.efs) throw new NfsError(Nfs3Status.XDEV);
  const efs = a.efs;
  assertWritable(efs);
  checkOldName(from.name);
  checkOldName(to.name);
  await efs.inDir(a.key, (fromDir) =>
    efs.inDir(b.key, async (toDir) => {
      const src = await lstatPath(`${fromDir}/${from.name}`);
      const dst = await lstatPath(`${toDir}/${to.name}`).catch(() => undefined);
      await fsp.rename(`${fromDir}/${from.name}`, `${toDir}/${to.name}`);
      const srcKey = inodeKey(src);
      if (dst && inodeKey(dst) !== srcKey) efs.forget(inodeKey(dst));
      efs.moved(srcKey, b.key, to.name);
    }),
  );
  const [fromSt, toSt] = await Promise.all([efs.tryStat(a.key), efs.tryStat(b.key)]);
  const w = new XdrWriter().u32(Nfs3Status.OK);
  writeWcc(w, fromSt, efs.fsid(fromSt?.dev ?? 0n));
  writeWcc(w, toSt, efs.fsid(toSt?.dev ?? 0n));
  return w;
};

/** MKNOD and LINK: device nodes and hard links are not offered over NFS. */
export const notSupported: NfsProc = (_ctx, r) => {
  readFh(r);
  return Promise.reject(new NfsError(Nfs3Status.NOTSUPP));
};
