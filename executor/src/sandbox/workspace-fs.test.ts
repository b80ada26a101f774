import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { isMountPoint, mountPoints, unmountBelow } from './mounts.js';
import { detectWorkspaceFs, ImageWorkspaceFs, type WorkspaceSpec } from './workspace-fs.js';

const run = promisify(execFile);
const MB = 1024 * 1024;

/** Each test's data dir; afterEach detaches whatever a failed test left mounted, then deletes it. */
const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-wsfs-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    await unmountBelow(dir);
    rmSync(dir, { recursive: true, force: true });
  }
});

function spec(dir: string, id: string, diskMB: number, hostUid = 240_001): WorkspaceSpec {
  return { id, workspaceDir: join(dir, 'sandboxes', id, 'workspace'), hostUid, hostGid: hostUid, diskMB };
}

/** Loop devices backed by `image` (losetup -j), to prove release leaves none behind. */
async function loopsOf(image: string): Promise<string> {
  return (await run('losetup', ['-j', image])).stdout.trim();
}

describe('workspace filesystem images', () => {
  it('is what a root executor with loop devices gets, and says so', async () => {
    const fs = await detectWorkspaceFs(dataDir());
    expect(fs.kind, fs.detail).toBe('ext4-image');
  });

  it('falls back to a plain directory, and says why, when the executor is not root (a container)', async () => {
    const dir = dataDir();
    const module = new URL('./workspace-fs.ts', import.meta.url).pathname.replace(/\/src\/(.*)\.ts$/, '/dist/$1.js');
    const script = `import(${JSON.stringify(module)}).then(async (m) => { const fs = await m.detectWorkspaceFs(${JSON.stringify(dir)}); console.log(JSON.stringify({ kind: fs.kind, detail: fs.detail })); })`;
    const out = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, '-e', script], { env: { PATH: '/usr/bin:/bin' } });
    expect(JSON.parse(out.stdout)).toEqual({ kind: 'none', detail: expect.stringMatching(/no hard size for \/workspace.*runs as uid 65534/) });
  });

  it('gives a workspace its own filesystem of diskMB, owned by the sandbox uid, where writes past it fail with ENOSPC', async () => {
    const dir = dataDir();
    const fs = new ImageWorkspaceFs(dir);
    await fs.init();
    const s = spec(dir, 'sbx-a', 32);
    await fs.prepare(s);
    try {
      expect(await isMountPoint(s.workspaceDir)).toBe(true);
      const root = statSync(s.workspaceDir);
      expect([root.uid, root.gid, root.mode & 0o7777]).toEqual([s.hostUid, s.hostGid, 0o755]);
      expect(readdirSync(s.workspaceDir)).toEqual([]); // no lost+found
      const df = (await run('df', ['--output=size', '-B1', s.workspaceDir])).stdout.split('\n')[1] ?? '';
      expect(Number(df)).toBeLessThanOrEqual(32 * MB);

      // As the sandbox's uid, files of 8 MB each (below RLIMIT_FSIZE) until the disk is full.
      const fill = await run('setpriv', ['--reuid', String(s.hostUid), '--regid', String(s.hostGid), '--clear-groups', 'sh', '-c',
        'i=0; while [ $i -lt 8 ]; do head -c 8M /dev/zero > f$i || exit 7; i=$((i+1)); done'], { cwd: s.workspaceDir, env: { PATH: '/usr/bin:/bin' } })
        .then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => err);
      expect(fill.code).toBe(7);
      expect(fill.stderr).toMatch(/No space left on device/);
      // Root on the host (files API, NFS) meets the same wall: no blocks are reserved for root.
      expect(() => writeFileSync(join(s.workspaceDir, 'root-file'), Buffer.alloc(8 * MB))).toThrow(/ENOSPC/);
      const used = readdirSync(s.workspaceDir).reduce((n, f) => n + statSync(join(s.workspaceDir, f)).size, 0);
      expect(used).toBeLessThanOrEqual(32 * MB);
      expect(used).toBeGreaterThan(16 * MB);
    } finally {
      await fs.release(s);
    }
    const image = join(dir, 'disk', 'sbx-a.img');
    expect(await isMountPoint(s.workspaceDir)).toBe(false);
    expect(existsSync(image)).toBe(false);
    expect((await mountPoints()).filter((p) => p.startsWith(dir))).toEqual([]);
  });

  it('releases a workspace a host-side reader still holds open (lazy), leaving no mount, image or loop device', async () => {
    const dir = dataDir();
    const fs = new ImageWorkspaceFs(dir);
    await fs.init();
    const s = spec(dir, 'sbx-busy', 16);
    await fs.prepare(s);
    const image = join(dir, 'disk', 'sbx-busy.img');
    writeFileSync(join(s.workspaceDir, 'held'), 'x');
    const fd = openSync(join(s.workspaceDir, 'held'), 'r');
    try {
      expect(await loopsOf(image)).not.toBe('');
      await fs.release(s);
      expect(await isMountPoint(s.workspaceDir)).toBe(false);
      expect(existsSync(image)).toBe(false);
    } finally {
      closeSync(fd);
    }
    // The last reference gone, the loop device detaches itself (autoclear).
    for (let i = 0; i < 50 && (await run('losetup', ['-a'])).stdout.includes(image); i++) await new Promise((r) => setTimeout(r, 100));
    expect((await run('losetup', ['-a'])).stdout).not.toContain(image);
  });

  it('shares one golden image per size, and a release without a prepare is a no-op', async () => {
    const dir = dataDir();
    const fs = new ImageWorkspaceFs(dir);
    await fs.init();
    const specs = [spec(dir, 's1', 16), spec(dir, 's2', 16, 240_002), spec(dir, 's3', 24)];
    await Promise.all(specs.map((s) => fs.prepare(s)));
    expect(readdirSync(join(dir, 'disk')).sort()).toEqual(['golden-16M.img', 'golden-24M.img', 's1.img', 's2.img', 's3.img']);
    expect(statSync(join(specs[1]!.workspaceDir)).uid).toBe(240_002);
    await Promise.all(specs.map((s) => fs.release(s)));
    await fs.release(spec(dir, 'never-prepared', 16));
    expect(readdirSync(join(dir, 'disk')).sort()).toEqual(['golden-16M.img', 'golden-24M.img']);
  });

  it('clears what a crashed executor left mounted in its data dir at the next start (unmountBelow)', async () => {
    const dir = dataDir();
    const crashed = new ImageWorkspaceFs(dir);
    await crashed.init();
    const s = spec(dir, 'left-over', 16);
    await crashed.prepare(s);
    writeFileSync(join(s.workspaceDir, 'data'), 'left behind');
    // Never released: the executor "crashed". The next one on this data dir starts:
    await new ImageWorkspaceFs(dir).init();
    expect((await mountPoints()).filter((p) => p.startsWith(dir))).toEqual([]);
    expect(existsSync(join(dir, 'disk', 'left-over.img'))).toBe(false);
    // The mount point is an empty directory again: rm -r no longer reaches the image's files.
    expect(readdirSync(s.workspaceDir)).toEqual([]);
    // And the data dir itself (which may be an operator's volume) is never detached.
    expect(await unmountBelow(dir)).toEqual([]);
    await expect(unmountBelow('/')).rejects.toThrow(/refusing/);
  });
});

describe('spare workspaces', () => {
  /** Mounted spares, by directory under spares/. */
  const sparesOf = async (dir: string): Promise<string[]> => (await mountPoints()).filter((p) => p.startsWith(join(dir, 'spares') + '/'));
  const until = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      if (await ok()) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  it('are made after a boot and taken by the next sandbox of that size: its own empty filesystem, its uid, its name', async () => {
    const dir = dataDir();
    const fs = new ImageWorkspaceFs(dir);
    await fs.init();
    const first = spec(dir, 'first', 16);
    await fs.prepare(first);
    expect(await sparesOf(dir)).toEqual([]); // nothing is made during a boot
    fs.booted(first);
    await until('two spares', async () => (await sparesOf(dir)).length === 2);
    // A spare is root's and empty until taken: nothing of another sandbox can be in it.
    for (const p of await sparesOf(dir)) expect([statSync(p).uid, readdirSync(p)]).toEqual([0, []]);

    const next = spec(dir, 'next', 16, 240_007);
    await fs.prepare(next);
    expect(await sparesOf(dir)).toHaveLength(1);
    expect(await isMountPoint(next.workspaceDir)).toBe(true);
    expect([statSync(next.workspaceDir).uid, statSync(next.workspaceDir).mode & 0o7777, readdirSync(next.workspaceDir)]).toEqual([240_007, 0o755, []]);
    // Its image carries the sandbox's name, so release (and the next executor's init) find it.
    expect(existsSync(join(dir, 'disk', 'next.img'))).toBe(true);
    expect(await loopsOf(join(dir, 'disk', 'next.img'))).not.toBe('');
    // Its own filesystem of its size, not the first sandbox's.
    writeFileSync(join(next.workspaceDir, 'mine'), 'x');
    expect(readdirSync(first.workspaceDir)).toEqual([]);
    const df = (await run('df', ['--output=size', '-B1', next.workspaceDir])).stdout.split('\n')[1] ?? '';
    expect(Number(df)).toBeLessThanOrEqual(16 * MB);

    // A boot made ahead of time (the warm pool's) takes no spare, and has none made for it.
    const ahead = spec(dir, 'ahead', 16);
    await fs.prepare(ahead, false);
    fs.booted(ahead);
    expect(existsSync(join(dir, 'disk', 'ahead.img'))).toBe(true);
    expect(await sparesOf(dir)).toHaveLength(1);
    await fs.release(ahead);

    // Another size gets none of these spares.
    const other = spec(dir, 'other', 24);
    await fs.prepare(other);
    expect(existsSync(join(dir, 'disk', 'other.img'))).toBe(true);
    expect(await sparesOf(dir)).toHaveLength(1);

    for (const s of [first, next, other]) await fs.release(s);
    await fs.close();
    // Nothing stays mounted or on disk but the golden images.
    expect((await mountPoints()).filter((p) => p.startsWith(dir))).toEqual([]);
    expect(readdirSync(join(dir, 'disk')).sort()).toEqual(['golden-16M.img', 'golden-24M.img']);
    expect(readdirSync(join(dir, 'spares'))).toEqual([]);
  });
});
