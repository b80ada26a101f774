/**
 * Disk limits, attacked from inside a session and through the API: /workspace has a hard size
 * (its own filesystem) that every writer meets, /dev and /dev/shm are small tmpfs mounts, and an
 * ended session leaves no mount and no image on the host.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as runCommand } from '../../../executor/dist/nfs/test-support.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { libnfsUrl, sessionSh, withSession, type NfsSession } from '../support/nfs.js';

/** Small enough to fill in a second; RLIMIT_FSIZE is also DISK_MB, so attacks use several files below it. */
const DISK_MB = 64;
const MEMORY_MB = 256;
const MB = 1024 * 1024;

let k: TestKiln;
let local: string;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 }, resources: { diskMB: DISK_MB, memoryMB: MEMORY_MB } }, python: null, shell: null, provided: null } });
  local = mkdtempSync(join(tmpdir(), 'kiln-disk-'));
});
afterAll(async () => {
  await k?.stop();
  if (local) rmSync(local, { recursive: true, force: true });
});

const sh = (s: NfsSession, script: string) => sessionSh(k, s, script);

/** Host mount points below this test's Kiln data dir (its executors' workspaces). */
function mountsBelowKiln(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p): p is string => p !== undefined && p.startsWith(`${k.dataDir}/`));
}

/** The host directory holding the session's /workspace, found by a marker it wrote there. */
async function hostWorkspaceOf(s: NfsSession): Promise<string> {
  const marker = `marker-${s.id}`;
  expect((await sh(s, `echo ${marker} > /workspace/.marker`)).exitCode).toBe(0);
  const dirs: string[] = [];
  for (const executor of readdirSync(join(k.dataDir, 'sandboxes'))) {
    const sandboxes = join(k.dataDir, 'sandboxes', executor, 'sandboxes');
    for (const id of (() => { try { return readdirSync(sandboxes); } catch { return []; } })()) dirs.push(join(sandboxes, id, 'workspace'));
  }
  const found = dirs.find((d) => { try { return readFileSync(join(d, '.marker'), 'utf8').trim() === marker; } catch { return false; } });
  if (!found) throw new Error(`no host workspace holds ${marker}; looked in ${dirs.join(', ')}`);
  return found;
}

describe('disk limits', () => {
  it('says in health that every workspace is a filesystem of its own', async () => {
    const health = await k.call('GET', '/api/v1/health');
    expect(health.body.executors.length).toBeGreaterThan(0);
    for (const e of health.body.executors) expect(e).toMatchObject({ ok: true, workspaceFs: 'ext4-image' });
  });

  it('stops a session process that writes past diskMB into /workspace with ENOSPC, and the filesystem keeps its size', async () => {
    await withSession(k, async (s) => {
      // Files of 20 MB each (below RLIMIT_FSIZE, which stops single files only) up to 6x the size.
      const fill = await sh(s, `cd /workspace && for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19; do head -c 20M /dev/zero > f$i || exit 9; done; echo all-written`);
      expect(fill.stdout).not.toContain('all-written');
      expect(fill.exitCode).toBe(9);
      expect(fill.stderr).toMatch(/No space left on device/);
      const dd = await sh(s, 'dd if=/dev/zero of=/workspace/dd.bin bs=1M count=32 2>&1; echo "exit=$?"');
      expect(dd.stdout).toMatch(/No space left on device/);
      const used = await sh(s, 'du -sb /workspace | cut -f1; df -B1 --output=size /workspace | tail -1');
      const [bytes, size] = used.stdout.trim().split('\n').map(Number);
      expect(bytes).toBeLessThanOrEqual(DISK_MB * MB);
      expect(size).toBeLessThanOrEqual(DISK_MB * MB);
      // Deleting frees the space again: it is a limit, not a broken disk.
      expect((await sh(s, 'rm -f /workspace/f* /workspace/dd.bin && head -c 20M /dev/zero > /workspace/again && echo ok')).stdout).toBe('ok\n');
    });
  });

  it('refuses an upload over the files API past the size with DiskQuotaExceeded (413)', async () => {
    await withSession(k, async (s) => {
      // A session process fills the disk (20 MB files until one fails), then the API uploads more.
      await sh(s, 'for i in 1 2 3 4; do head -c 20M /dev/zero > /workspace/fill$i || break; done');
      // Small: the executor refuses at its first write, before the body fills the gRPC window
      // (a refusal in the middle of a larger body leaves the upload waiting for 'drain').
      const res = await fetch(`${k.url}/api/v1/sessions/${s.id}/files?path=upload.bin`, { method: 'PUT', body: Buffer.alloc(16 * 1024, 1), headers: { 'content-type': 'application/octet-stream' } });
      const body: unknown = await res.json();
      expect(res.status, JSON.stringify(body)).toBe(413);
      expect(body).toMatchObject({ error: { code: 'DiskQuotaExceeded' } });
      const used = await sh(s, 'du -sb /workspace | cut -f1');
      expect(Number(used.stdout)).toBeLessThanOrEqual(DISK_MB * MB);
    });
  });

  it('keeps the old file and leaves no partial one when an upload over an existing file meets a full disk', async () => {
    await withSession(k, async (s) => {
      const url = `${k.url}/api/v1/sessions/${s.id}/files?path=keep.bin`;
      expect((await fetch(url, { method: 'PUT', body: 'old contents' })).status).toBe(200);
      // 100 MB into a 64 MB workspace: the disk fills in the middle of the upload.
      const res = await fetch(url, { method: 'PUT', body: Buffer.alloc(100 * MB, 7), headers: { 'content-type': 'application/octet-stream' } });
      const body: unknown = await res.json();
      expect(res.status, JSON.stringify(body)).toBe(413);
      expect(body).toMatchObject({ error: { code: 'DiskQuotaExceeded', data: { path: '/workspace/keep.bin' } } });
      const after = await sh(s, 'ls -A /workspace; cat /workspace/keep.bin; echo; du -sb /workspace | cut -f1');
      expect(after.stdout).not.toContain('kiln-upload');
      expect(after.stdout).toContain('old contents');
      // The space the partial upload took is free again.
      expect(Number(after.stdout.trim().split('\n').pop())).toBeLessThan(MB);
    });
  });

  it('stops writes through the NFS export at the size', async () => {
    await withSession(k, async (s) => {
      const src = join(local, `nfs-${s.id}.bin`);
      writeFileSync(src, Buffer.alloc(24 * MB, 7));
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await runCommand('nfs-cp', [src, libnfsUrl(s.nfs.port, s.nfs.exportPath.slice(1), `/n${i}.bin`)], 120_000));
      expect(results.some((r) => r.code !== 0), JSON.stringify(results.map((r) => r.code))).toBe(true);
      const used = await sh(s, 'du -sb /workspace | cut -f1');
      expect(Number(used.stdout)).toBeLessThanOrEqual(DISK_MB * MB);
    });
  });

  it('sizes /dev/shm and /dev, and /dev takes no files', async () => {
    await withSession(k, async (s) => {
      const df = await sh(s, 'df -B1 --output=size,target /dev /dev/shm | tail -n +2');
      const sizes = Object.fromEntries(df.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/)).map(([size, target]) => [target, Number(size)]));
      expect(sizes['/dev']).toBeLessThanOrEqual(1 * MB);
      expect(sizes['/dev/shm']).toBeLessThanOrEqual(Math.min(64, MEMORY_MB) * MB);
      // Files of 30 MB (below RLIMIT_FSIZE) until /dev/shm is full.
      const shm = await sh(s, 'for i in 1 2 3 4 5; do head -c 30M /dev/zero > /dev/shm/f$i || break; done; cat /dev/shm/f* | wc -c');
      expect(shm.stderr).toMatch(/No space left on device/);
      expect(Number(shm.stdout)).toBeLessThanOrEqual(64 * MB);
      const dev = await sh(s, 'head -c 1M /dev/zero > /dev/stash; echo "exit=$?"; ls /dev');
      expect(dev.stdout).not.toContain('exit=0');
      expect(dev.stderr).toMatch(/Read-only file system/);
      expect(dev.stdout).not.toContain('stash');
      // What programs need from /dev still works.
      expect((await sh(s, 'rm /dev/shm/f* && echo x > /dev/null && head -c 4 /dev/urandom | wc -c && python3 -c "import multiprocessing as m; q=m.Queue(); q.put(1); print(q.get())"')).stdout).toBe('4\n1\n');
    });
  });

  it('leaves no mount and no image on the host once the session ends', async () => {
    let workspace = '';
    await withSession(k, async (s) => {
      workspace = await hostWorkspaceOf(s);
      expect(mountsBelowKiln()).toContain(workspace);
    });
    const sandboxDir = join(workspace, '..');
    const id = sandboxDir.split('/').pop() as string;
    const executorDir = join(sandboxDir, '..', '..');
    // Deleting a session destroys its sandbox before the API answers.
    expect(mountsBelowKiln()).not.toContain(workspace);
    expect(readdirSync(join(executorDir, 'disk')).filter((f) => f.startsWith(id))).toEqual([]);
    expect(() => readdirSync(sandboxDir)).toThrow(/ENOENT/);
  });
});
