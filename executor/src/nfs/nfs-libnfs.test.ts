/**
 * End-to-end tests with the real libnfs clients (nfs-ls, nfs-cat, nfs-cp from
 * Debian's libnfs-utils) against a server on an ephemeral loopback port.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type TestNfs, makeExport, removeDir, run, startNfs, tempDir } from './test-support.js';
import type { NfsExport } from './types.js';

const sha256 = (path: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });

describe('NFS export with libnfs clients', () => {
  let nfs: TestNfs;
  let exp: NfsExport;
  let local: string;

  beforeEach(async () => {
    exp = makeExport('sess-libnfs');
    local = tempDir('kiln-nfs-local-');
    nfs = await startNfs([exp]);
  });

  afterEach(async () => {
    await nfs.close();
    removeDir(exp.root);
    removeDir(local);
  });

  it('copies a file in with nfs-cp and it lands on disk, owned by the export uid', async () => {
    const src = join(local, 'in.txt');
    writeFileSync(src, 'hello over nfs\n');
    const r = await run('nfs-cp', [src, nfs.url(`/${exp.id}/in.txt`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(exp.root, 'in.txt'), 'utf8')).toBe('hello over nfs\n');
    if (process.getuid?.() === 0) {
      const st = statSync(join(exp.root, 'in.txt'));
      expect([st.uid, st.gid]).toEqual([exp.uid, exp.gid]);
    }
    const back = await run('nfs-cat', [nfs.url(`/${exp.id}/in.txt`)]);
    expect(back.stdout).toBe('hello over nfs\n');
  });

  it('reads a file written on disk, also through a mount of a subdirectory', async () => {
    mkdirSync(join(exp.root, 'a/b'), { recursive: true });
    writeFileSync(join(exp.root, 'a/b/note.txt'), 'from the sandbox');
    const r = await run('nfs-cat', [nfs.url(`/${exp.id}/a/b/note.txt`)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('from the sandbox');
    const ls = await run('nfs-ls', [nfs.url(`/${exp.id}/a/b`)]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain('note.txt');
  });

  it('lists a directory tree recursively', async () => {
    mkdirSync(join(exp.root, 'src/lib'), { recursive: true });
    mkdirSync(join(exp.root, 'empty'));
    writeFileSync(join(exp.root, 'README.md'), '# hi');
    writeFileSync(join(exp.root, 'src/main.ts'), 'x');
    writeFileSync(join(exp.root, 'src/lib/util.ts'), 'y');
    for (let i = 0; i < 300; i++) writeFileSync(join(exp.root, 'src/lib', `f${i}.txt`), String(i));
    const r = await run('nfs-ls', ['-R', nfs.url(`/${exp.id}`)]);
    expect(r.code, r.stderr).toBe(0);
    for (const p of ['README.md', 'src/main.ts', 'src/lib/util.ts', 'src/lib/f299.txt', 'empty']) {
      expect(r.stdout).toContain(p);
    }
    const files = r.stdout.split('\n').filter((l) => /src\/lib\/f\d+\.txt/.test(l));
    expect(files).toHaveLength(300);
  });

  it('copies a 50 MB file in and out with the same sha256', async () => {
    const src = join(local, 'big.bin');
    writeFileSync(src, randomBytes(50 * 1024 * 1024));
    const put = await run('nfs-cp', [src, nfs.url(`/${exp.id}/big.bin`)]);
    expect(put.code, put.stderr).toBe(0);
    const out = join(local, 'big.out');
    const get = await run('nfs-cp', [nfs.url(`/${exp.id}/big.bin`), out]);
    expect(get.code, get.stderr).toBe(0);
    const [a, b, c] = await Promise.all([sha256(src), sha256(join(exp.root, 'big.bin')), sha256(out)]);
    expect(b).toBe(a);
    expect(c).toBe(a);
  });

  it('fails to mount an unknown session, and a session that has ended', async () => {
    const unknown = await run('nfs-ls', [nfs.url('/no-such-session')]);
    expect(unknown.code).not.toBe(0);
    expect(`${unknown.stdout}${unknown.stderr}`).toMatch(/mount|NOENT|failed/i);
    nfs.exports.delete(exp.id);
    const ended = await run('nfs-ls', [nfs.url(`/${exp.id}`)]);
    expect(ended.code).not.toBe(0);
  });

  it('refuses writes to a read-only export but serves reads', async () => {
    const ro = makeExport('sess-ro', { readOnly: true });
    nfs.exports.set(ro.id, ro);
    try {
      writeFileSync(join(ro.root, 'r.txt'), 'readable');
      const src = join(local, 'w.txt');
      writeFileSync(src, 'nope');
      const put = await run('nfs-cp', [src, nfs.url(`/${ro.id}/w.txt`)]);
      expect(put.code).not.toBe(0);
      expect(put.stderr).toMatch(/ROFS|Read-only|failed/i);
      expect(existsSync(join(ro.root, 'w.txt'))).toBe(false);
      const cat = await run('nfs-cat', [nfs.url(`/${ro.id}/r.txt`)]);
      expect(cat.stdout).toBe('readable');
    } finally {
      removeDir(ro.root);
    }
  });

  it('refuses clients outside the allow-list', async () => {
    exp.allow = ['10.123.45.6', '192.168.0.0/16'];
    const denied = await run('nfs-ls', [nfs.url(`/${exp.id}`)]);
    expect(denied.code).not.toBe(0);
    exp.allow = ['127.0.0.0/8'];
    const allowed = await run('nfs-ls', [nfs.url(`/${exp.id}`)]);
    expect(allowed.code, allowed.stderr).toBe(0);
  });

  it('never reaches outside the export through ".." or a symlink planted by the sandbox', async () => {
    const { symlinkSync } = await import('node:fs');
    symlinkSync('/', join(exp.root, 'rootlink'));
    symlinkSync('/etc/passwd', join(exp.root, 'passwd'));
    const viaLink = await run('nfs-cat', [nfs.url(`/${exp.id}/rootlink/etc/passwd`)]);
    expect(viaLink.code).not.toBe(0);
    expect(viaLink.stdout).not.toContain('root:');
    const direct = await run('nfs-cat', [nfs.url(`/${exp.id}/passwd`)]);
    expect(direct.stdout).not.toContain('root:');
    const dotdot = await run('nfs-cat', [nfs.url(`/${exp.id}/../etc/passwd`)]);
    expect(dotdot.stdout).not.toContain('root:');
    const mountLink = await run('nfs-ls', [nfs.url(`/${exp.id}/rootlink`)]);
    expect(mountLink.code).not.toBe(0);
  });
});
