/**
 * NFSv3 attribute structures: fattr3 / post_op_attr / wcc_data encoding from
 * Node's BigIntStats, and sattr3 decoding.
 */
import type { BigIntStats } from 'node:fs';
import { XdrError, type XdrReader, type XdrWriter } from './xdr.js';

/** ftype3 values. */
export const Ftype = { REG: 1, DIR: 2, BLK: 3, CHR: 4, LNK: 5, SOCK: 6, FIFO: 7 } as const;

/** Maps a stat result to ftype3. */
export function ftypeOf(st: BigIntStats): number {
  if (st.isFile()) return Ftype.REG;
  if (st.isDirectory()) return Ftype.DIR;
  if (st.isSymbolicLink()) return Ftype.LNK;
  if (st.isBlockDevice()) return Ftype.BLK;
  if (st.isCharacterDevice()) return Ftype.CHR;
  if (st.isSocket()) return Ftype.SOCK;
  return Ftype.FIFO;
}

const NS = 1_000_000_000n;

function writeTime(w: XdrWriter, ns: bigint): void {
  if (ns < 0n) ns = 0n;
  w.u32(Number((ns / NS) & 0xffffffffn)).u32(Number(ns % NS));
}

/** Linux dev_t → (major, minor), as glibc's gnu_dev_major/minor. */
function devParts(rdev: bigint): [number, number] {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return [Number(major & 0xffffffffn), Number(minor & 0xffffffffn)];
}

/** Encodes fattr3 (84 bytes). `fsid` is per export so clients never confuse two sessions' files. */
export function writeFattr(w: XdrWriter, st: BigIntStats, fsid: bigint): void {
  const [major, minor] = devParts(st.rdev);
  w.u32(ftypeOf(st))
    .u32(Number(st.mode & 0o7777n))
    .u32(Number(st.nlink & 0xffffffffn))
    .u32(Number(st.uid))
    .u32(Number(st.gid))
    .u64(st.size)
    .u64(st.blocks * 512n)
    .u32(major)
    .u32(minor)
    .u64(fsid)
    .u64(st.ino);
  writeTime(w, st.atimeNs);
  writeTime(w, st.mtimeNs);
  writeTime(w, st.ctimeNs);
}

/** Encodes post_op_attr: attributes are optional in NFSv3 replies. */
export function writePostOpAttr(w: XdrWriter, st: BigIntStats | undefined, fsid: bigint): void {
  if (!st) {
    w.bool(false);
    return;
  }
  w.bool(true);
  writeFattr(w, st, fsid);
}

/** Encodes wcc_data with no pre-op attributes (allowed by RFC 1813) and the given post-op ones. */
export function writeWcc(w: XdrWriter, after: BigIntStats | undefined, fsid: bigint): void {
  w.bool(false);
  writePostOpAttr(w, after, fsid);
}

/** How a time attribute is to be set. */
export type SetTime = { kind: 'server' } | { kind: 'client'; sec: number; nsec: number };

/** Decoded sattr3: only the fields the client asked to set are present. */
export interface Sattr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: bigint;
  atime?: SetTime;
  mtime?: SetTime;
}

function readSetTime(r: XdrReader): SetTime | undefined {
  const how = r.u32();
  if (how === 0) return undefined;
  if (how === 1) return { kind: 'server' };
  if (how === 2) return { kind: 'client', sec: r.u32(), nsec: r.u32() };
  throw new XdrError(`bad time_how ${how}`);
}

/** Decodes sattr3. */
export function readSattr(r: XdrReader): Sattr {
  const s: Sattr = {};
  if (r.bool()) s.mode = r.u32();
  if (r.bool()) s.uid = r.u32();
  if (r.bool()) s.gid = r.u32();
  if (r.bool()) s.size = r.u64();
  const atime = readSetTime(r);
  if (atime) s.atime = atime;
  const mtime = readSetTime(r);
  if (mtime) s.mtime = mtime;
  return s;
}

/** Converts a SetTime to seconds (the unit Node's utimes takes). */
export function setTimeSeconds(t: SetTime): number {
  return t.kind === 'server' ? Date.now() / 1000 : t.sec + t.nsec / 1e9;
}
