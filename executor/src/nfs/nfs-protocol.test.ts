/**
 * Procedure-level tests through a raw RPC client, for what the libnfs CLI
 * tools do not exercise: namespace changes, attributes, create modes, write
 * verifiers, directory paging.
 */
import { lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Nfs3Status as S } from './errors.js';
import { Nfs3TestClient, RawRpcClient } from './test-client.js';
import { type TestNfs, makeExport, removeDir, startNfs } from './test-support.js';
import type { NfsExport } from './types.js';
import { XdrWriter } from './xdr.js';

describe('NFSv3 procedures', () => {
  let nfs: TestNfs;
  let exp: NfsExport;
  let c: Nfs3TestClient;
  let root: Buffer;

  beforeEach(async () => {
    exp = makeExport('sess-proto');
    nfs = await startNfs([exp]);
    c = new Nfs3TestClient(await RawRpcClient.connect(nfs.port));
    const m = await c.mount(`/${exp.id}`);
    expect(m.status).toBe(0);
    root = m.fh!;
  });

  afterEach(async () => {
    c.rpc.close();
    await nfs.close();
    removeDir(exp.root);
  });

  it('reports attributes that match the host file', async () => {
    writeFileSync(join(exp.root, 'f.txt'), 'twelve bytes');
    const { fh, attr } = await c.lookup(root, 'f.txt');
    const st = lstatSync(join(exp.root, 'f.txt'), { bigint: true });
    expect(attr).toMatchObject({
      type: 1,
      mode: Number(st.mode & 0o7777n),
      nlink: 1,
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 12n,
      used: st.blocks * 512n,
      fileid: st.ino,
      atimeNs: st.atimeNs,
      mtimeNs: st.mtimeNs,
      ctimeNs: st.ctimeNs,
    });
    const again = await c.getattr(fh!);
    expect(again.attr?.fsid).toBe(attr?.fsid);
    const dir = await c.getattr(root);
    expect(dir.attr?.type).toBe(2);
  });

  it('creates and removes directories, and RMDIR refuses non-empty ones', async () => {
    const d = await c.mkdir(root, 'newdir', 0o750);
    expect(d.status).toBe(0);
    expect(statSync(join(exp.root, 'newdir')).isDirectory()).toBe(true);
    expect(statSync(join(exp.root, 'newdir')).mode & 0o7777).toBe(0o750);
    if (process.getuid?.() === 0) expect(statSync(join(exp.root, 'newdir')).uid).toBe(exp.uid);
    expect((await c.mkdir(root, 'newdir')).status).toBe(S.EXIST);
    expect((await c.mkdir(d.fh!, 'child')).status).toBe(0);
    expect(await c.rmdir(root, 'newdir')).toBe(S.NOTEMPTY);
    expect(await c.rmdir(d.fh!, 'child')).toBe(0);
    expect(await c.rmdir(root, 'newdir')).toBe(0);
    expect(await c.rmdir(root, 'newdir')).toBe(S.NOENT);
    expect((await c.getattr(d.fh!)).status).toBe(S.STALE);
  });

  it('renames files and directories; handles of moved directories keep working', async () => {
    mkdirSync(join(exp.root, 'a/inner'), { recursive: true });
    writeFileSync(join(exp.root, 'a/inner/x.txt'), 'x');
    const a = (await c.lookup(root, 'a')).fh!;
    const inner = (await c.lookup(a, 'inner')).fh!;
    const x = (await c.lookup(inner, 'x.txt')).fh!;
    const b = (await c.mkdir(root, 'b')).fh!;
    expect(await c.rename(a, 'inner', b, 'moved')).toBe(0);
    expect(readFileSync(join(exp.root, 'b/moved/x.txt'), 'utf8')).toBe('x');
    expect((await c.read(x, 0n, 10)).data?.toString()).toBe('x');
    expect((await c.lookup(inner, 'x.txt')).status).toBe(0);
    // Renaming over an existing file replaces it.
    writeFileSync(join(exp.root, 'old.txt'), 'old');
    writeFileSync(join(exp.root, 'new.txt'), 'new');
    expect(await c.rename(root, 'new.txt', root, 'old.txt')).toBe(0);
    expect(readFileSync(join(exp.root, 'old.txt'), 'utf8')).toBe('new');
    expect(await c.rename(root, 'missing', root, 'y')).toBe(S.NOENT);
    expect(await c.rename(root, '..', root, 'y')).toBe(S.INVAL);
  });

  it('creates and reads symlinks, refusing targets that leave the export', async () => {
    mkdirSync(join(exp.root, 'd'));
    const d = (await c.lookup(root, 'd')).fh!;
    const ok = await c.symlink(d, 'up', '../target');
    expect(ok.status).toBe(0);
    expect(ok.attr?.type).toBe(5);
    expect(readlinkSync(join(exp.root, 'd/up'))).toBe('../target');
    expect(await c.readlink(ok.fh!)).toEqual({ status: 0, target: '../target' });
    expect((await c.symlink(d, 'abs', '/etc/passwd')).status).toBe(S.ACCES);
    expect((await c.symlink(d, 'climb', '../../etc')).status).toBe(S.ACCES);
    expect((await c.symlink(root, 'climb', '..')).status).toBe(S.ACCES);
    expect((await c.symlink(d, 'tricky', 'x/../../..')).status).toBe(S.ACCES);
    expect((await c.readlink(d)).status).toBe(S.INVAL);
    // A link is never followed by the server: it is not a directory to look into.
    expect((await c.lookup(ok.fh!, 'anything')).status).toBe(S.NOTDIR);
  });

  it('applies SETATTR mode, size and nanosecond mtime, stripping setuid', async () => {
    writeFileSync(join(exp.root, 's.txt'), 'some content');
    const { fh } = await c.lookup(root, 's.txt');
    expect(await c.setattr(fh!, { mode: 0o4751, size: 4n, mtime: { sec: 1_600_000_000, nsec: 123_456_789 } })).toBe(0);
    const st = statSync(join(exp.root, 's.txt'), { bigint: true });
    expect(Number(st.mode & 0o7777n)).toBe(0o751);
    expect(st.size).toBe(4n);
    expect(st.mtimeNs / 1000n).toBe(1_600_000_000_123_456n); // Node's utimes keeps µs
    expect(await c.setattr(fh!, { uid: 4242 })).toBe(S.PERM);
    expect(await c.setattr(root, { size: 0n })).toBe(S.ISDIR);
  });

  it('implements UNCHECKED, GUARDED and EXCLUSIVE create', async () => {
    const g = await c.create(root, 'g.txt', 1, { mode: 0o600 });
    expect(g.status).toBe(0);
    expect(statSync(join(exp.root, 'g.txt')).mode & 0o777).toBe(0o600);
    expect((await c.create(root, 'g.txt', 1)).status).toBe(S.EXIST);
    writeFileSync(join(exp.root, 'g.txt'), 'data');
    const u = await c.create(root, 'g.txt', 0, { size: 0n });
    expect(u.status).toBe(0);
    expect(u.attr?.fileid).toBe(g.attr?.fileid);
    expect(statSync(join(exp.root, 'g.txt')).size).toBe(0);

    const verf = Buffer.from('01234567');
    const e1 = await c.create(root, 'e.txt', 2, { verf });
    expect(e1.status).toBe(0);
    const retry = await c.create(root, 'e.txt', 2, { verf });
    expect(retry.status).toBe(0); // a retransmitted EXCLUSIVE create succeeds
    expect(retry.attr?.fileid).toBe(e1.attr?.fileid);
    expect((await c.create(root, 'e.txt', 2, { verf: Buffer.from('76543210') })).status).toBe(S.EXIST);

    mkdirSync(join(exp.root, 'adir'));
    expect((await c.create(root, 'adir', 0)).status).toBe(S.EXIST);
    expect((await c.create(root, '..', 0)).status).toBe(S.EXIST);
    expect((await c.create(root, 'a/b', 0)).status).toBe(S.ACCES);
    expect((await c.create(root, 'x'.repeat(256), 0)).status).toBe(S.NAMETOOLONG);
  });

  it('writes and reads at offsets with a stable write verifier', async () => {
    const { fh } = await c.create(root, 'w.bin', 1);
    const w1 = await c.write(fh!, 0n, Buffer.from('hello '), 0);
    const w2 = await c.write(fh!, 6n, Buffer.from('world'), 2);
    expect(w1).toMatchObject({ status: 0, count: 6, committed: 0 });
    expect(w2).toMatchObject({ status: 0, count: 5, committed: 2 });
    expect(w1.verf).toEqual(w2.verf);
    const cm = await c.commit(fh!);
    expect(cm.verf).toEqual(w1.verf);
    expect(readFileSync(join(exp.root, 'w.bin'), 'utf8')).toBe('hello world');
    const r = await c.read(fh!, 6n, 100);
    expect(r).toMatchObject({ status: 0, eof: true });
    expect(r.data?.toString()).toBe('world');
    const mid = await c.read(fh!, 0n, 5);
    expect(mid.eof).toBe(false);
    expect((await c.read(root, 0n, 10)).status).toBe(S.ISDIR);
    // A 1 MiB write (the advertised wtmax) in one call.
    const big = Buffer.alloc(1024 * 1024, 0xab);
    expect((await c.write(fh!, 0n, big)).count).toBe(big.length);
    expect((await c.read(fh!, 0n, big.length)).data?.equals(big)).toBe(true);
  });

  it('pages READDIR and READDIRPLUS with cookies, and sees every entry once', async () => {
    const names = Array.from({ length: 250 }, (_, i) => `entry-${i}-${'n'.repeat(i % 40)}`);
    for (const n of names) writeFileSync(join(exp.root, n), '');
    for (const plus of [false, true]) {
      const listed = await c.listAll(root, 2048, plus);
      expect(listed.filter((n) => n !== '.' && n !== '..').sort()).toEqual([...names].sort());
      expect(listed.filter((n) => n === '.' || n === '..')).toHaveLength(2);
    }
    // Continuing a listing after entries were removed neither repeats nor skips survivors.
    const first = await c.readdir(root, 0n, Buffer.alloc(8), 2048, true);
    const seen = new Set(first.entries.map((e) => e.name));
    for (const n of names.slice(0, 100)) if (!seen.has(n)) await c.remove(root, n);
    const rest: string[] = [];
    let cookie = first.entries.at(-1)!.cookie;
    let verf = first.verf!;
    for (;;) {
      const p = await c.readdir(root, cookie, verf, 2048, true);
      rest.push(...p.entries.map((e) => e.name));
      if (p.eof || p.entries.length === 0) break;
      cookie = p.entries.at(-1)!.cookie;
      verf = p.verf!;
    }
    const expected = names.slice(100).filter((n) => !seen.has(n));
    expect(rest.filter((n) => !names.slice(0, 100).includes(n)).sort()).toEqual(expected.sort());
    // READDIRPLUS handles work.
    const withFh = first.entries.find((e) => e.name.startsWith('entry-'))!;
    expect((await c.getattr(withFh.fh!)).status).toBe(0);
    expect((await c.readdir(root, 0n, Buffer.alloc(8), 50, false)).status).toBe(S.TOOSMALL);
  });

  it('answers FSSTAT, FSINFO (1 MiB transfers), PATHCONF, ACCESS', async () => {
    const fsstat = await c.nfs(18, new XdrWriter().opaque(root));
    expect(fsstat.status).toBe(0);
    const fsinfo = await c.nfs(19, new XdrWriter().opaque(root));
    expect(fsinfo.status).toBe(0);
    if (fsinfo.body.bool()) fsinfo.body.fixed(84);
    expect(fsinfo.body.u32()).toBe(1 << 20); // rtmax
    fsinfo.body.u32();
    fsinfo.body.u32();
    expect(fsinfo.body.u32()).toBe(1 << 20); // wtmax
    const pc = await c.nfs(20, new XdrWriter().opaque(root));
    expect(pc.status).toBe(0);
    const acc = await c.nfs(4, new XdrWriter().opaque(root).u32(0x3f));
    expect(acc.status).toBe(0);
    if (acc.body.bool()) acc.body.fixed(84);
    expect(acc.body.u32()).toBe(0x1f); // everything but EXECUTE on a directory
  });

  it('refuses MKNOD and LINK with NOTSUPP', async () => {
    writeFileSync(join(exp.root, 'l.txt'), '');
    const f = (await c.lookup(root, 'l.txt')).fh!;
    expect((await c.nfs(15, new XdrWriter().opaque(f).opaque(root).string('hard'))).status).toBe(S.NOTSUPP);
    expect((await c.nfs(11, new XdrWriter().opaque(root).string('dev').u32(3).bool(false))).status).toBe(S.NOTSUPP);
  });

  it('answers many pipelined calls on one connection', async () => {
    writeFileSync(join(exp.root, 'p.txt'), 'p');
    const calls = Array.from({ length: 300 }, (_, i) => (i % 2 ? c.getattr(root) : c.lookup(root, 'p.txt')));
    const results = await Promise.all(calls);
    expect(results.every((r) => r.status === 0)).toBe(true);
  });
});
