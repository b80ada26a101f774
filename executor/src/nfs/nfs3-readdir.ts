/**
 * READDIR and READDIRPLUS.
 *
 * Cookies are a 63-bit hash of the entry name and entries are returned in
 * cookie order, so a cookie stays meaningful when the directory changes
 * between calls (no BAD_COOKIE needed, nothing skipped or repeated except
 * entries added or removed meanwhile). The sorted listing is snapshotted per
 * cookie verifier so a long listing hashes and sorts the directory once.
 * Cookies 1 and 2 are "." and "..".
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, type BigIntStats } from 'node:fs';
import { writePostOpAttr } from './attrs.js';
import { Nfs3Status, NfsError } from './errors.js';
import { lstatPath } from '../fs/fsio.js';
import { type NfsCallContext, type NfsProc, readFh, resolveFh } from './nfs3-common.js';
import type { ExportFs } from './vfs.js';
import { XdrWriter } from './xdr.js';

interface Entry {
  name: string;
  cookie: bigint;
}

interface Listing {
  dir: string;
  entries: Entry[];
  at: number;
}

/** Cap on a listing reply, whatever the client asks for. */
const MAX_REPLY = 1024 * 1024;
const SNAPSHOT_TTL_MS = 60_000;
const SNAPSHOTS_PER_EXPORT = 64;
const snapshots = new WeakMap<ExportFs, Map<string, Listing>>();

function nameCookie(name: string): bigint {
  const h = createHash('md5').update(name).digest().readBigUInt64BE(0) >> 1n;
  return h < 3n ? h + 3n : h;
}

async function buildListing(efs: ExportFs, dir: string): Promise<Entry[]> {
  const names = await efs.inDir(dir, (p) => fsp.readdir(p));
  const entries = names.map((name) => ({ name, cookie: nameCookie(name) }));
  entries.sort((a, b) => (a.cookie < b.cookie ? -1 : a.cookie > b.cookie ? 1 : a.name < b.name ? -1 : 1));
  // Hash collisions: bump so that cookies stay strictly increasing.
  for (let i = 1; i < entries.length; i++) {
    const prev = entries[i - 1]!;
    const e = entries[i]!;
    if (e.cookie <= prev.cookie) e.cookie = prev.cookie + 1n;
  }
  return entries;
}

/** The listing to continue from: the snapshot named by `verf` if still held, else a fresh one. */
async function listingFor(efs: ExportFs, dir: string, verf: Buffer): Promise<{ verf: Buffer; entries: Entry[] }> {
  let map = snapshots.get(efs);
  if (!map) {
    map = new Map<string, Listing>();
    snapshots.set(efs, map);
  }
  const now = Date.now();
  const held = map.get(verf.toString('hex'));
  if (held && held.dir === dir && now - held.at < SNAPSHOT_TTL_MS) return { verf, entries: held.entries };
  for (const [k, l] of map) if (now - l.at >= SNAPSHOT_TTL_MS || map.size >= SNAPSHOTS_PER_EXPORT) map.delete(k);
  const fresh = randomBytes(8);
  const entries = await buildListing(efs, dir);
  map.set(fresh.toString('hex'), { dir, entries, at: now });
  return { verf: fresh, entries };
}

const pad4 = (n: number): number => (n + 3) & ~3;
/** Bytes of one entry's fileid+name+cookie, plus its "value follows" flag. */
const dirBytes = (name: string): number => 4 + 8 + 4 + pad4(Buffer.byteLength(name)) + 8;
/** post_op_attr (4 + 84) + post_op_fh3 (4 + 4 + padded 41-byte handle). */
const PLUS_BYTES = 88 + 8 + 44;
/** status + dir post_op_attr + cookieverf + list terminator + eof. */
const HEADER_BYTES = 4 + 88 + 8 + 4 + 4;

interface Row {
  name: string;
  cookie: bigint;
  key: string;
  st: BigIntStats;
}

async function readdirCommon(
  ctx: NfsCallContext,
  fh: Buffer,
  cookie: bigint,
  verf: Buffer,
  dircount: number,
  maxcount: number,
  plus: boolean,
): Promise<XdrWriter> {
  maxcount = Math.min(maxcount, MAX_REPLY);
  const { efs, key: dir } = await resolveFh(ctx, fh);
  const dirSt = await efs.stat(dir);
  if (!dirSt.isDirectory()) throw new NfsError(Nfs3Status.NOTDIR);
  const listing = await listingFor(efs, dir, verf);

  // Pick the window of entries that fits, before touching the disk for each.
  const window: Entry[] = [];
  if (cookie < 1n) window.push({ name: '.', cookie: 1n });
  if (cookie < 2n) window.push({ name: '..', cookie: 2n });
  let i = listing.entries.findIndex((e) => e.cookie > cookie);
  if (i < 0) i = listing.entries.length;
  for (; i < listing.entries.length; i++) window.push(listing.entries[i]!);
  let total = HEADER_BYTES;
  let dirTotal = 0;
  let fit = 0;
  for (const e of window) {
    const d = dirBytes(e.name);
    const size = d + (plus ? PLUS_BYTES : 0);
    if (total + size > maxcount || (plus && dircount > 0 && dirTotal + d > dircount)) break;
    total += size;
    dirTotal += d;
    fit++;
  }
  if (fit === 0 && window.length > 0) throw new NfsError(Nfs3Status.TOOSMALL);
  const eof = fit === window.length;

  const rows: Row[] = [];
  const chosen = window.slice(0, fit);
  const stated = await efs.inDir(dir, (dirPath) =>
    Promise.all(
      chosen.map(async (e): Promise<Row | undefined> => {
        if (e.name === '.') return { ...e, key: dir, st: dirSt };
        if (e.name === '..') {
          const key = efs.parentOf(dir);
          const st = await efs.tryStat(key);
          return st ? { ...e, key, st } : undefined;
        }
        // Entries removed since the snapshot are simply left out.
        const st = await lstatPath(`${dirPath}/${e.name}`).catch(() => undefined);
        return st ? { ...e, key: efs.register(dir, e.name, st), st } : undefined;
      }),
    ),
  );
  for (const r of stated) if (r) rows.push(r);

  const w = new XdrWriter(Math.min(total + 64, 1 << 20)).u32(Nfs3Status.OK);
  writePostOpAttr(w, dirSt, efs.fsid(dirSt.dev));
  w.fixed(listing.verf);
  for (const row of rows) {
    w.bool(true).u64(row.st.ino).string(row.name).u64(row.cookie);
    if (plus) {
      writePostOpAttr(w, row.st, efs.fsid(row.st.dev));
      w.bool(true).opaque(ctx.registry.handle(efs, row.key));
    }
  }
  return w.bool(false).bool(eof);
}

export const readdir: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const cookie = r.u64();
  const verf = r.fixed(8);
  const count = r.u32();
  return readdirCommon(ctx, fh, cookie, Buffer.from(verf), 0, count, false);
};

export const readdirplus: NfsProc = async (ctx, r) => {
  const fh = readFh(r);
  const cookie = r.u64();
  const verf = r.fixed(8);
  const dircount = r.u32();
  const maxcount = r.u32();
  return readdirCommon(ctx, fh, cookie, Buffer.from(verf), dircount, maxcount, true);
};
