/**
 * Isolation and robustness: handles are bound to their export, nothing
 * outside an export root is reachable, ended sessions and restarts yield
 * STALE, and hostile bytes never take the server down.
 */
import { mkdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Nfs3Status as S } from './errors.js';
import { AcceptStat, encodeCall } from './rpc.js';
import { Nfs3TestClient, RawRpcClient } from './test-client.js';
import { type TestNfs, makeExport, removeDir, startNfs } from './test-support.js';
import type { NfsExport } from './types.js';
import { XdrWriter } from './xdr.js';

const MNT3ERR_NOENT = 2;
const MNT3ERR_ACCES = 13;
const MNT3ERR_NOTDIR = 20;

describe('NFS isolation and robustness', () => {
  let nfs: TestNfs;
  let a: NfsExport;
  let b: NfsExport;
  let c: Nfs3TestClient;
  let rootA: Buffer;
  let rootB: Buffer;

  beforeEach(async () => {
    a = makeExport('sess-a');
    b = makeExport('sess-b');
    nfs = await startNfs([a, b]);
    c = new Nfs3TestClient(await RawRpcClient.connect(nfs.port));
    rootA = (await c.mount(`/${a.id}`)).fh!;
    rootB = (await c.mount(`/${b.id}`)).fh!;
  });

  afterEach(async () => {
    c.rpc.close();
    await nfs.close();
    removeDir(a.root);
    removeDir(b.root);
  });

  it("never lets one session's handle reach another session's files", async () => {
    writeFileSync(join(b.root, 'b-secret'), 'B only');
    writeFileSync(join(a.root, 'a-file'), 'A');
    expect((await c.lookup(rootA, 'b-secret')).status).toBe(S.NOENT);
    expect(await c.rename(rootA, 'a-file', rootB, 'stolen')).toBe(S.XDEV);
    expect(await c.rename(rootB, 'b-secret', rootA, 'stolen')).toBe(S.XDEV);

    const secret = (await c.lookup(rootB, 'b-secret')).fh!;
    // Re-tag B's file handle as A's (with either MAC): refused.
    const retagged = Buffer.concat([secret.subarray(0, 1), rootA.subarray(1, 9), secret.subarray(9)]);
    expect((await c.getattr(retagged)).status).toBe(S.STALE);
    const withAMac = Buffer.concat([secret.subarray(0, 1), rootA.subarray(1, 9), secret.subarray(9, 25), rootA.subarray(25)]);
    expect((await c.read(withAMac, 0n, 100)).status).toBe(S.STALE);
    // A's root handle re-pointed at B's inode: refused.
    const repointed = Buffer.concat([rootA.subarray(0, 9), secret.subarray(9, 25), rootA.subarray(25)]);
    expect((await c.read(repointed, 0n, 100)).status).toBe(S.STALE);
    // Garbage of the right and wrong sizes.
    expect((await c.getattr(Buffer.alloc(rootA.length, 1))).status).toBe(S.STALE); // right version byte, bad MAC
    expect((await c.getattr(Buffer.alloc(rootA.length, 2))).status).toBe(S.BADHANDLE);
    expect((await c.getattr(Buffer.alloc(7))).status).toBe(S.BADHANDLE);

    // Listings of A contain only A's entries.
    expect(await c.listAll(rootA)).not.toContain('b-secret');
    // B's handle still works for B's own files, whatever connection and mount it travels on.
    expect((await c.read(secret, 0n, 100)).data?.toString()).toBe('B only');
  });

  it('keeps a nested export from climbing into its parent export', async () => {
    const inner = makeExport('sess-inner', { root: join(a.root, 'nested') });
    mkdirSync(inner.root);
    writeFileSync(join(a.root, 'parent-only'), 'p');
    nfs.exports.set(inner.id, inner);
    const rootI = (await c.mount(`/${inner.id}`)).fh!;
    const up = await c.lookup(rootI, '..');
    expect(up.status).toBe(0);
    expect(up.attr?.fileid).toBe(BigInt(statSync(inner.root).ino));
    expect((await c.lookup(up.fh!, 'parent-only')).status).toBe(S.NOENT);
  });

  it('never reaches outside the export through "..", slashes or symlinks', async () => {
    const up = await c.lookup(rootA, '..');
    expect(up.attr?.fileid).toBe(BigInt(statSync(a.root).ino));
    expect((await c.lookup(rootA, '../sess-b')).status).toBe(S.ACCES);
    expect((await c.mount(`/${a.id}/..`)).status).toBe(MNT3ERR_ACCES);
    expect((await c.mount(`/${a.id}/../${b.id}`)).status).toBe(MNT3ERR_ACCES);

    symlinkSync('/', join(a.root, 'rootlink'));
    const link = await c.lookup(rootA, 'rootlink');
    expect(link.attr?.type).toBe(5);
    expect((await c.lookup(link.fh!, 'etc')).status).toBe(S.NOTDIR);
    expect((await c.read(link.fh!, 0n, 10)).status).toBe(S.INVAL);
    expect((await c.readdir(link.fh!, 0n, Buffer.alloc(8), 4096, true)).status).toBe(S.NOTDIR);
    expect((await c.mount(`/${a.id}/rootlink`)).status).toBe(MNT3ERR_NOTDIR);
    expect((await c.create(link.fh!, 'x', 0)).status).not.toBe(0);

    // A directory swapped for a symlink to "/" after its handle was issued.
    mkdirSync(join(a.root, 'd'));
    const d = (await c.lookup(rootA, 'd')).fh!;
    renameSync(join(a.root, 'd'), join(a.root, 'd-moved'));
    symlinkSync('/', join(a.root, 'd'));
    const etc = await c.lookup(d, 'etc');
    expect(etc.status).not.toBe(0);
    const created = await c.create(d, 'planted', 1);
    if (created.status === 0) expect(statSync(join(a.root, 'd-moved/planted')).isFile()).toBe(true);
    expect(() => statSync('/planted')).toThrow();

    // Once d's pinned fd has been evicted, re-resolving meets the symlink and refuses it.
    for (let i = 0; i < 300; i++) writeFileSync(join(a.root, `filler-${i}`), '');
    for (let i = 0; i < 300; i++) await c.lookup(rootA, `filler-${i}`);
    expect((await c.lookup(d, 'etc')).status).toBe(S.STALE);
    expect((await c.getattr(d)).status).toBe(S.STALE);
  });

  it('reports STALE for a file the sandbox deleted', async () => {
    writeFileSync(join(a.root, 'gone'), 'x');
    const f = (await c.lookup(rootA, 'gone')).fh!;
    const { unlinkSync } = await import('node:fs');
    unlinkSync(join(a.root, 'gone'));
    expect((await c.getattr(f)).status).toBe(S.STALE);
    expect((await c.read(f, 0n, 10)).status).toBe(S.STALE);
  });

  it('turns handles STALE when the session ends, its root changes, or the server restarts', async () => {
    writeFileSync(join(a.root, 'f'), 'x');
    const f = (await c.lookup(rootA, 'f')).fh!;
    nfs.exports.delete(a.id);
    expect((await c.getattr(f)).status).toBe(S.STALE);
    expect((await c.getattr(rootA)).status).toBe(S.STALE);
    expect((await c.mount(`/${a.id}`)).status).toBe(MNT3ERR_NOENT);
    expect((await c.getattr(rootB)).status).toBe(0);

    // Same session id, new root: old handles do not carry over.
    const again = makeExport(a.id);
    nfs.exports.set(a.id, again);
    try {
      expect((await c.getattr(f)).status).toBe(S.STALE);
    } finally {
      removeDir(again.root);
    }

    // Restart: a new server over the same export.
    const second = await startNfs([b]);
    const c2 = new Nfs3TestClient(await RawRpcClient.connect(second.port));
    try {
      expect((await c2.getattr(rootB)).status).toBe(S.STALE);
      const fresh = (await c2.mount(`/${b.id}`)).fh!;
      expect((await c2.getattr(fresh)).status).toBe(0);
      const w1 = await c.write((await c.create(rootB, 'v1', 1)).fh!, 0n, Buffer.from('x'));
      const w2 = await c2.write((await c2.create(fresh, 'v2', 1)).fh!, 0n, Buffer.from('x'));
      expect(w1.verf).not.toEqual(w2.verf); // clients learn to resend uncommitted data
    } finally {
      c2.rpc.close();
      await second.close();
    }
  });

  it('enforces the allow-list on MNT, EXPORT and every call', async () => {
    const exportList = async (): Promise<string[]> => {
      const rep = await c.rpc.call(100005, 3, 5);
      const dirs: string[] = [];
      while (rep.body.bool()) {
        dirs.push(rep.body.string(1024));
        while (rep.body.bool()) rep.body.string(1024);
      }
      return dirs;
    };
    // EXPORT lists nothing, to anyone: session ids are not to be enumerated.
    expect(await exportList()).toEqual([]);
    expect((await c.mount(`/${a.id}`)).status).toBe(0);
    a.allow = ['10.0.0.0/8'];
    expect(await exportList()).toEqual([]);
    expect((await c.mount(`/${a.id}`)).status).toBe(MNT3ERR_ACCES);
    expect((await c.getattr(rootA)).status).toBe(S.ACCES);
    a.allow = ['127.0.0.1'];
    expect((await c.getattr(rootA)).status).toBe(0);
  });

  it('refuses every mutation on a read-only export', async () => {
    writeFileSync(join(a.root, 'r'), 'read me');
    const r = (await c.lookup(rootA, 'r')).fh!;
    a.readOnly = true;
    expect((await c.mkdir(rootA, 'x')).status).toBe(S.ROFS);
    expect((await c.create(rootA, 'x', 0)).status).toBe(S.ROFS);
    expect((await c.write(r, 0n, Buffer.from('no'))).status).toBe(S.ROFS);
    expect(await c.setattr(r, { mode: 0o777 })).toBe(S.ROFS);
    expect(await c.remove(rootA, 'r')).toBe(S.ROFS);
    expect(await c.rename(rootA, 'r', rootA, 'r2')).toBe(S.ROFS);
    expect((await c.symlink(rootA, 's', 'r')).status).toBe(S.ROFS);
    expect((await c.read(r, 0n, 100)).data?.toString()).toBe('read me');
  });

  it('answers RPC-level errors: unknown program, version, procedure, garbage arguments', async () => {
    const rpc = c.rpc;
    expect((await rpc.call(100227, 3, 0)).stat).toBe(AcceptStat.PROG_UNAVAIL); // NFSACL
    const v4 = await rpc.call(100003, 4, 0);
    expect(v4.stat).toBe(AcceptStat.PROG_MISMATCH);
    expect([v4.body.u32(), v4.body.u32()]).toEqual([3, 3]);
    expect((await rpc.call(100005, 1, 0)).stat).toBe(AcceptStat.PROG_MISMATCH);
    expect((await rpc.call(100003, 3, 22)).stat).toBe(AcceptStat.PROC_UNAVAIL);
    expect((await rpc.call(100005, 3, 9)).stat).toBe(AcceptStat.PROC_UNAVAIL);
    // Truncated bodies: a handle length with no handle, a WRITE shorter than it claims.
    expect((await rpc.call(100003, 3, 1, new XdrWriter().u32(41).toBuffer())).stat).toBe(AcceptStat.GARBAGE_ARGS);
    const shortWrite = new XdrWriter()
      .opaque(rootA)
      .u64(0n)
      .u32(1 << 20)
      .u32(0)
      .u32(1 << 20)
      .raw(Buffer.alloc(10));
    expect((await rpc.call(100003, 3, 7, shortWrite.toBuffer())).stat).toBe(AcceptStat.GARBAGE_ARGS);
    expect((await rpc.call(100005, 3, 1, Buffer.alloc(2))).stat).toBe(AcceptStat.GARBAGE_ARGS);
    // AUTH_NONE is accepted, and the connection is still fine after all that.
    expect((await rpc.call(100003, 3, 0, Buffer.alloc(0), null)).stat).toBe(AcceptStat.SUCCESS);
  });

  it('handles multi-fragment records, however the bytes are split', async () => {
    const raw = await RawRpcClient.connect(nfs.port);
    try {
      const msg = encodeCall(777, 100003, 3, 1, new XdrWriter().opaque(rootA).toBuffer());
      const parts = [msg.subarray(0, 10), msg.subarray(10, 10), msg.subarray(10, 11), msg.subarray(11)];
      const wire = Buffer.concat(parts.map((p, i) => Buffer.concat([fragHeader(p.length, i === parts.length - 1), p])));
      const reply = raw.waitReply(777);
      for (let i = 0; i < wire.length; i += 7) {
        raw.sendRaw(wire.subarray(i, i + 7));
        await new Promise((r) => setImmediate(r));
      }
      const rep = await reply;
      expect(rep.stat).toBe(AcceptStat.SUCCESS);
      expect(rep.body.u32()).toBe(0);
    } finally {
      raw.close();
    }
  });

  it('survives malformed records, truncated bodies and random input, and still answers NULL', async () => {
    const port = nfs.port;
    const closedBy = async (bytes: Buffer): Promise<void> => {
      const r = await RawRpcClient.connect(port);
      r.sendRaw(bytes);
      await r.closed; // the server hangs up on garbage
    };
    await closedBy(fragHeader(0x7fffffff, true)); // far over the record cap
    await closedBy(Buffer.concat([fragHeader(5, true), Buffer.from('hello')])); // not an RPC call
    await closedBy(Buffer.concat([fragHeader(12, true), new XdrWriter().u32(1).u32(1).u32(0).toBuffer()])); // a reply
    const shortHeader = encodeCall(9, 100003, 3, 0, Buffer.alloc(0)).subarray(0, 30);
    await closedBy(Buffer.concat([fragHeader(shortHeader.length, true), shortHeader]));
    // Half a record, then the client vanishes.
    const half = await RawRpcClient.connect(port);
    half.sendRaw(Buffer.concat([fragHeader(1000, true), Buffer.alloc(100)]));
    half.close();

    // Seeded random records: pure noise, and real headers with mangled arguments.
    let seed = 12345;
    const rand = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
    let fuzz = await RawRpcClient.connect(port);
    let alive = true;
    void fuzz.closed.then(() => (alive = false));
    for (let i = 0; i < 400; i++) {
      if (!alive) {
        fuzz = await RawRpcClient.connect(port);
        alive = true;
        void fuzz.closed.then(() => (alive = false));
      }
      const kind = rand();
      let msg: Buffer;
      if (kind < 0.2) msg = bytes(Math.floor(rand() * 64));
      else {
        const prog = rand() < 0.8 ? 100003 : 100005;
        const proc = Math.floor(rand() * 23);
        const args = rand() < 0.7 ? Buffer.concat([new XdrWriter().opaque(rootA).toBuffer(), bytes(Math.floor(rand() * 80))]) : bytes(Math.floor(rand() * 80));
        msg = encodeCall(i, prog, 3, proc, args);
      }
      fuzz.sendRaw(Buffer.concat([fragHeader(msg.length, true), msg]));
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    fuzz.close();

    const probe = await RawRpcClient.connect(port);
    try {
      expect((await probe.call(100003, 3, 0)).stat).toBe(AcceptStat.SUCCESS);
      expect((await probe.call(100005, 3, 0)).stat).toBe(AcceptStat.SUCCESS);
    } finally {
      probe.close();
    }
    // The fuzzing stayed inside export A.
    expect((await c.listAll(rootB)).filter((n) => n !== '.' && n !== '..')).toEqual([]);
  });
});

function fragHeader(len: number, last: boolean): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(((last ? 0x80000000 : 0) | len) >>> 0);
  return h;
}
