import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Named volumes through REST: made once, mounted by several sessions at once (read-write and
 * read-only), surviving the sessions that wrote them; deleted only when no live session mounts
 * one. The restarts are in faults/volumes-restart.test.ts, the attacks in security/volumes.test.ts.
 */
let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 6, sandboxesPerExecutor: 6 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const sessions: string[] = [];
afterAll(async () => {
  for (const id of sessions) await k?.call('DELETE', `/api/v1/sessions/${id}`);
});

async function session(volumes: unknown[]): Promise<string> {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes, timeoutMs: 600_000 });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  sessions.push(res.body.id as string);
  return res.body.id as string;
}
const sh = (id: string, line: string) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 });

describe('volumes', () => {
  it('is made once per Idempotency-Key, listed and read by name', async () => {
    const name = `v-${randomBytes(3).toString('hex')}`;
    const key = { 'idempotency-key': `mk-${name}` };
    const made = await k.call('POST', '/api/v1/volumes', { name, sizeMB: 32 }, key);
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    expect(made.body).toMatchObject({ name, sizeMB: 32, tenant: expect.any(String) });
    expect(made.body.id).toMatch(/^vol_[0-9a-f]{32}$/);
    const again = await k.call('POST', '/api/v1/volumes', { name, sizeMB: 32 }, key);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body.id).toBe(made.body.id);
    // Without the key, the same name is taken.
    const dup = await k.call('POST', '/api/v1/volumes', { name, sizeMB: 32 });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('VolumeExists');
    expect((await k.call('GET', `/api/v1/volumes/${name}`)).body.id).toBe(made.body.id);
    expect((await k.call('GET', '/api/v1/volumes')).body.volumes.map((v: { name: string }) => v.name)).toContain(name);
    expect((await k.call('DELETE', `/api/v1/volumes/${name}`)).status).toBe(204);
    expect((await k.call('GET', `/api/v1/volumes/${name}`)).status).toBe(404);
  });

  it('is written by one session while another reads and writes it, refuses writes where mounted read-only, outlives its sessions and is deleted when none mounts it', async () => {
    const name = `shared-${randomBytes(3).toString('hex')}`;
    const made = await k.call('POST', '/api/v1/volumes', { name, sizeMB: 64 });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const volumeId = made.body.id as string;

    const [writer, reader, viewer] = await Promise.all([
      session([{ name, path: '/mnt/data' }]),
      session([{ name, path: '/mnt/shared/team' }]),
      session([{ name, path: '/mnt/ro', readOnly: true }]),
    ]);
    const got = await k.call('GET', `/api/v1/sessions/${writer}`);
    expect(got.body.volumes).toEqual([{ name, path: '/mnt/data', readOnly: false }]);

    // The writer appends a line every 50 ms in the background; the reader sees the file grow while it runs.
    const bg = await k.call('POST', `/api/v1/sessions/${writer}/processes`, { command: 'for i in $(seq 1 400); do echo "line $i" >> /mnt/data/log.txt; sleep 0.05; done', shell: true });
    expect(bg.status, JSON.stringify(bg.body)).toBe(201);
    const counts: number[] = [];
    for (let i = 0; i < 40 && (counts.length < 2 || (counts.at(-1) ?? 0) <= (counts[0] ?? 0)); i++) {
      const r = await sh(reader, 'wc -l < /mnt/shared/team/log.txt 2>/dev/null || echo 0');
      counts.push(Number(r.body.stdout.trim()));
      await new Promise((res) => setTimeout(res, 300));
    }
    expect(counts.at(-1)).toBeGreaterThan(counts[0] ?? 0);
    const running = await k.call('GET', `/api/v1/sessions/${writer}/processes`);
    expect(running.body.processes.some((p: { pid: number; running: boolean }) => p.pid === bg.body.pid && p.running), 'the writer still writes while the reader reads').toBe(true);

    // Each sandbox has its own host uid: a file one session made, another may change (the default ACL).
    expect((await sh(reader, 'echo from-reader > /mnt/shared/team/reader.txt && mkdir -p /mnt/shared/team/dir && echo a > /mnt/shared/team/dir/f')).body.exitCode).toBe(0);
    const changed = await sh(writer, 'echo more >> /mnt/data/reader.txt && echo b >> /mnt/data/dir/f && cat /mnt/data/reader.txt /mnt/data/dir/f');
    expect(changed.body.stdout).toBe('from-reader\nmore\na\nb\n');

    // Read-only: the kernel refuses every write, even by a process that tries to remount it.
    expect((await sh(viewer, 'cat /mnt/ro/reader.txt')).body.stdout).toBe('from-reader\nmore\n');
    const refused = await sh(viewer, 'echo x > /mnt/ro/new.txt; echo x >> /mnt/ro/reader.txt; rm /mnt/ro/reader.txt; mkdir /mnt/ro/d; true');
    expect(refused.body.stderr.match(/Read-only file system/g)?.length, refused.body.stderr).toBe(4);
    expect((await sh(viewer, 'grep " /mnt/ro " /proc/self/mounts')).body.stdout).toMatch(/ ro[,\s]/);

    // In use: the volume stays.
    const busy = await k.call('DELETE', `/api/v1/volumes/${name}`);
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe('VolumeInUse');
    expect(busy.body.error.data.sessions.sort()).toEqual([writer, reader, viewer].sort());

    await k.call('POST', `/api/v1/sessions/${writer}/processes/${bg.body.pid}/signal`, { signal: 'SIGKILL' });
    for (const id of [writer, reader, viewer]) expect((await k.call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);

    // A later session finds what the ended ones left.
    const later = await session([{ name, path: '/mnt/data' }]);
    const lines = Number((await sh(later, 'wc -l < /mnt/data/log.txt')).body.stdout.trim());
    expect(lines).toBeGreaterThan(1);
    expect((await sh(later, 'cat /mnt/data/reader.txt')).body.stdout).toBe('from-reader\nmore\n');
    // A fork mounts the same volume (the same data, not a copy).
    const fork = await k.call('POST', `/api/v1/sessions/${later}/fork`, { count: 1 });
    expect(fork.status, JSON.stringify(fork.body)).toBe(201);
    const forked = fork.body.sessions[0].id as string;
    sessions.push(forked);
    expect(fork.body.sessions[0].volumes).toEqual([{ name, path: '/mnt/data', readOnly: false }]);
    expect((await sh(forked, 'cat /mnt/data/reader.txt')).body.stdout).toBe('from-reader\nmore\n');
    expect((await k.call('DELETE', `/api/v1/sessions/${forked}`)).status).toBe(204);
    // Hibernated (its sandbox freed) it still holds the volume; restored into a new sandbox, the volume is there again.
    expect((await k.call('POST', `/api/v1/sessions/${later}/hibernate`)).status).toBe(200);
    expect((await k.call('DELETE', `/api/v1/volumes/${name}`)).body.error.code).toBe('VolumeInUse');
    const resumed = await k.call('POST', `/api/v1/sessions/${later}/resume`);
    expect(resumed.body.resumeType, JSON.stringify(resumed.body)).toBe('restored');
    expect((await sh(later, 'echo restored >> /mnt/data/reader.txt && cat /mnt/data/reader.txt')).body.stdout).toBe('from-reader\nmore\nrestored\n');
    expect((await k.call('DELETE', `/api/v1/sessions/${later}`)).status).toBe(204);

    // Deleted once no session mounts it: its image and directory are gone from the host.
    const dir = join(k.dataDir, 'volumes', createHash('sha256').update(made.body.tenant).digest('hex').slice(0, 32), volumeId);
    expect(existsSync(join(dir, 'image'))).toBe(true);
    expect((await k.call('DELETE', `/api/v1/volumes/${name}`)).status).toBe(204);
    expect(existsSync(dir)).toBe(false);
    expect(execFileSync('cat', ['/proc/self/mountinfo'], { encoding: 'utf8' })).not.toContain(volumeId);
    expect((await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name, path: '/mnt/data' }] })).body.error.code).toBe('VolumeNotFound');
  });
});
