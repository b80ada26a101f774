/**
 * NFSv3 procedures that only read: GETATTR, LOOKUP, ACCESS, READLINK, READ,
 * FSSTAT, FSINFO, PATHCONF.
 */
import { promises as fsp } from 'node:fs';
import { writeFattr, writePostOpAttr } from './attrs.js';
import { Nfs3Status, NfsError } from './errors.js';
import { fstatFd, inodeKey, lstatPath, preadFd } from '../fs/fsio.js';
import { type NfsProc, readDirOp, readFh, resolveFh } from './nfs3-common.js';
import { NAME_MAX } from './vfs.js';
import { XdrWriter } from './xdr.js';

/** Largest READ/WRITE payload; advertised in FSINFO and matching the record cap. */
export const MAX_IO = 1024 * 1024;

const OK = (): XdrWriter => new XdrWriter().u32(Nfs3Status.OK);

export const getattr: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const { efs, key } = await resolveFh(ctx, fh);
  const st = await efs.stat(key);
  const w = OK();
  writeFattr(w, st, efs.fsid(st.dev));
  return w;
};

export const lookup: NfsProc = async (ctx, r) => {
  const { dir, name } = readDirOp(r);
  const { efs, key: dirKey } = await resolveFh(ctx, dir);
  const found = await efs.lookup(dirKey, name);
  const dirSt = await efs.tryStat(dirKey);
  const w = OK().opaque(ctx.registry.handle(efs, found.key));
  writePostOpAttr(w, found.st, efs.fsid(found.st.dev));
  writePostOpAttr(w, dirSt, efs.fsid(dirSt?.dev ?? 0n));
  return w;
};

const ACCESS_READ = 0x1;
const ACCESS_LOOKUP = 0x2;
const ACCESS_MODIFY = 0x4;
const ACCESS_EXTEND = 0x8;
const ACCESS_DELETE = 0x10;
const ACCESS_EXECUTE = 0x20;

/**
 * Anyone allowed to mount a session acts as its owner, so ACCESS reflects the
 * export's policy (read-only or not) and the file type, not the caller's uid.
 */
export const access: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const want = r.u32();
  const { efs, key } = await resolveFh(ctx, fh);
  const st = await efs.stat(key);
  let allowed = ACCESS_READ;
  if (!efs.exp.readOnly) allowed |= ACCESS_MODIFY | ACCESS_EXTEND | ACCESS_DELETE;
  if (st.isDirectory()) allowed |= ACCESS_LOOKUP;
  else if ((st.mode & 0o111n) !== 0n) allowed |= ACCESS_EXECUTE;
  const w = OK();
  writePostOpAttr(w, st, efs.fsid(st.dev));
  return w.u32(want & allowed);
};

/** Returns the link text as stored; the server itself never follows it. */
export const readlink: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const { efs, key } = await resolveFh(ctx, fh);
  const { parent, name } = efs.locate(key);
  const { st, target } = await efs.inDir(parent, async (dirPath) => {
    const st = await lstatPath(`${dirPath}/${name}`);
    if (inodeKey(st) !== key) throw new NfsError(Nfs3Status.STALE);
    if (!st.isSymbolicLink()) throw new NfsError(Nfs3Status.INVAL);
    return { st, target: await fsp.readlink(`${dirPath}/${name}`, { encoding: 'buffer' }) };
  });
  const w = OK();
  writePostOpAttr(w, st, efs.fsid(st.dev));
  return w.opaque(target);
};

export const read: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const offset = r.u64();
  const count = Math.min(r.u32(), MAX_IO);
  const { efs, key } = await resolveFh(ctx, fh);
  const lease = await efs.dataFd(key, false);
  try {
    let data = Buffer.alloc(0);
    const buf = count > 0 && offset < BigInt(Number.MAX_SAFE_INTEGER) ? Buffer.allocUnsafe(count) : undefined;
    // Read and stat in parallel: one thread-pool round trip instead of two on the hot path.
    const [n, st] = await Promise.all([buf ? preadFd(lease.fd, buf, Number(offset)) : 0, fstatFd(lease.fd)]);
    if (buf) data = buf.subarray(0, n);
    if (st.nlink === 0n) {
      // Deleted behind our back while its fd was cached.
      efs.forget(key);
      throw new NfsError(Nfs3Status.STALE);
    }
    // A short read means EOF even if the file grew after the stat.
    const eof = data.length < count || offset + BigInt(data.length) >= st.size;
    const w = OK();
    writePostOpAttr(w, st, efs.fsid(st.dev));
    return w.u32(data.length).bool(eof).opaqueRef(data);
  } finally {
    lease.release();
  }
};

export const fsstat: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const { efs, key } = await resolveFh(ctx, fh);
  const st = await efs.stat(key);
  const fs = await efs.inDir(efs.rootKey, (rootPath) => fsp.statfs(rootPath, { bigint: true }));
  const w = OK();
  writePostOpAttr(w, st, efs.fsid(st.dev));
  return w
    .u64(fs.blocks * fs.bsize)
    .u64(fs.bfree * fs.bsize)
    .u64(fs.bavail * fs.bsize)
    .u64(fs.files)
    .u64(fs.ffree)
    .u64(fs.ffree)
    .u32(0); // invarsec: the figures may change at any time
};

const FSF3_SYMLINK = 0x2;
const FSF3_HOMOGENEOUS = 0x8;
const FSF3_CANSETTIME = 0x10;

export const fsinfo: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const { efs, key } = await resolveFh(ctx, fh);
  const st = await efs.tryStat(key);
  const w = OK();
  writePostOpAttr(w, st, efs.fsid(st?.dev ?? 0n));
  return w
    .u32(MAX_IO) // rtmax
    .u32(MAX_IO) // rtpref
    .u32(4096) // rtmult
    .u32(MAX_IO) // wtmax
    .u32(MAX_IO) // wtpref
    .u32(4096) // wtmult
    .u32(64 * 1024) // dtpref
    .u64(0x7fffffffffffffffn) // maxfilesize
    .u32(0) // time_delta: nanosecond timestamps
    .u32(1)
    .u32(FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME); // no FSF3_LINK: LINK is not supported
};

export const pathconf: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const { efs, key } = await resolveFh(ctx, fh);
  const st = await efs.tryStat(key);
  const w = OK();
  writePostOpAttr(w, st, efs.fsid(st?.dev ?? 0n));
  return w
    .u32(65000) // linkmax
    .u32(NAME_MAX)
    .bool(true) // no_trunc: long names are refused, not truncated
    .bool(true) // chown_restricted
    .bool(false) // case_insensitive
    .bool(true); // case_preserving
};
