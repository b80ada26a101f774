import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kiln } from '@kiln-sandbox/sdk';
import { until } from '../support/faults.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Synced volumes (control-plane/src/volumes/synced.ts) under attack, on the local platform (the
 * same executor code as in a docker container: a tmpfs in the sandbox, filled and packed by tar
 * inside it). What is attacked: a hostile archive in the blob store (links out, `..`, absolute
 * names, devices) unpacks nowhere; links a sandbox plants are stored as links, never followed;
 * the size holds inside the sandbox (ENOSPC) and at sync (a sparse file: 413, the previous
 * generation kept); a read-only mount takes no write, from inside or through the files API;
 * another tenant finds neither the volume nor the sync route; a read-only key cannot sync.
 * The docker platform's own run is e2e/volumes-synced.test.ts.
 */
const ALPHA = 'synced-alpha-key-0123456789abcdef012';
const BETA = 'synced-beta-key-0123456789abcdef0123';
const ADMIN = 'synced-admin-key-0123456789abcdef012';
const as = (key: string) => ({ authorization: `Bearer ${key}` });

let k: TestKiln;
const sessions: Array<{ id: string; key: string }> = [];
const volumes: Array<{ name: string; key: string }> = [];

beforeAll(async () => {
  // Transfers share 24 MB here: two 4 MB volumes' archives (9 MB each at most) at once, so every
  // fill and sync below also checks that each gives its reservation back (a leak would refuse the next).
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0, maxSandboxes: 6, sandboxesPerExecutor: 6 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_VOLUME_MAX_MB: '64', KILN_QUOTA_VOLUME_MB: '100', KILN_VOLUME_TRANSFER_MEMORY_MB: '24', KILN_VOLUME_SYNC_IDLE_MS: '2000' },
  });
});
afterAll(async () => {
  for (const s of sessions) await k?.call('DELETE', `/api/v1/sessions/${s.id}`, undefined, as(s.key));
  for (const v of volumes) await k?.call('DELETE', `/api/v1/volumes/${v.name}`, undefined, as(v.key));
  await k?.stop();
});

async function volume(key: string, sizeMB = 4): Promise<{ name: string; id: string; tenant: string }> {
  const name = `s-${randomBytes(4).toString('hex')}`;
  const made = await k.call('POST', '/api/v1/volumes', { name, sizeMB, mode: 'synced' }, as(key));
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  expect(made.body).toMatchObject({ mode: 'synced', generation: 0 });
  volumes.push({ name, key });
  return { name, id: made.body.id as string, tenant: made.body.tenant as string };
}
async function session(key: string, mounts: unknown[]): Promise<string> {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: mounts, timeoutMs: 300_000 }, as(key));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  sessions.push({ id: res.body.id as string, key });
  return res.body.id as string;
}
async function end(id: string, key: string): Promise<void> {
  const res = await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, as(key));
  expect(res.status, JSON.stringify(res.body)).toBe(204);
}
const sh = (id: string, key: string, line: string) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 }, as(key));
const sync = (id: string, name: string, key: string) => k.call('POST', `/api/v1/sessions/${id}/volumes/${name}/sync`, undefined, as(key));

/** One tar header (ustar) and its data, padded. */
function entry(name: string, type: string, data = Buffer.alloc(0), link = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write(link, 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  if (type === '3') {
    h.write('0000001\0', 329);
    h.write('0000003\0', 337);
  }
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}
const tarOf = (...entries: Buffer[]) => Buffer.concat([...entries, Buffer.alloc(1024)]);

/** The file of a volume's current archive in the disk blob store (its key is in the volume's record). */
async function blobFile(v: { name: string; tenant: string }): Promise<string> {
  const raw = await k.redis.hget(`${k.prefix}:vols:${v.tenant}`, v.name);
  const blob = (JSON.parse(raw ?? '{}') as { blob?: string }).blob;
  expect(blob).toMatch(/^volumes\/[0-9a-f]{32}\/vol_[0-9a-f]{32}\/[0-9]+-[0-9a-f]{12}\.tar$/);
  return join(k.dataDir, 'blobs', ...(blob as string).split('/'));
}

describe('synced volumes', () => {
  it('carry what one session wrote into the next, keep the size inside the sandbox and at sync, and keep the previous generation when a sync is refused', { timeout: 180_000 }, async () => {
    const v = await volume(ALPHA, 4);
    const a = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(a, ALPHA, 'echo one > /mnt/data/a.txt && mkdir -p /mnt/data/d && echo two > /mnt/data/d/b.txt')).body.exitCode).toBe(0);
    // The tmpfs holds sizeMB: a bigger file fails with ENOSPC inside the sandbox.
    const big = await sh(a, ALPHA, 'dd if=/dev/zero of=/mnt/data/big bs=1M count=8 2>&1; rm -f /mnt/data/big');
    expect(big.body.stdout).toMatch(/No space left on device/);
    const synced = await sync(a, v.name, ALPHA);
    expect(synced.status, JSON.stringify(synced.body)).toBe(200);
    expect(synced.body).toMatchObject({ name: v.name, mode: 'synced', generation: 1 });
    expect(synced.body.bytes).toBeGreaterThan(1024);

    // A sparse file holds no pages in the tmpfs but its full length in an archive: refused at sync.
    expect((await sh(a, ALPHA, 'truncate -s 20M /mnt/data/sparse && echo three > /mnt/data/c.txt')).body.exitCode).toBe(0);
    const tooBig = await sync(a, v.name, ALPHA);
    expect(tooBig.status, JSON.stringify(tooBig.body)).toBe(413);
    expect(tooBig.body.error.code).toBe('VolumeTooLarge');
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).body.generation).toBe(1);
    // DELETE stores what it can, and ends the session whatever the sync says: code in the sandbox
    // must not make its own session undeletable (a sparse file recreated as fast as it is removed).
    // The volume keeps its previous generation.
    await end(a, ALPHA);
    expect((await k.call('GET', `/api/v1/sessions/${a}`, undefined, as(ALPHA))).status).toBe(404);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).body.generation).toBe(1);

    const b = await session(ALPHA, [{ name: v.name, path: '/mnt/in', readOnly: true }]);
    expect((await sh(b, ALPHA, 'cat /mnt/in/a.txt /mnt/in/d/b.txt; ls /mnt/in')).body.stdout).toBe('one\ntwo\na.txt\nd\n');
    await end(b, ALPHA);
  });

  it('a read-only mount refuses writes from inside the sandbox and through the files API, and has nothing to sync', { timeout: 120_000 }, async () => {
    const v = await volume(ALPHA, 2);
    const ro = await session(ALPHA, [{ name: v.name, path: '/mnt/ro', readOnly: true }]);
    const w = await sh(ro, ALPHA, 'touch /mnt/ro/x 2>&1; mkdir /mnt/ro/d 2>&1; ls -A /mnt/ro | wc -l');
    expect(w.body.stdout).toMatch(/Read-only file system/);
    expect(w.body.stdout.trim().split('\n').at(-1)).toBe('0');
    // A remount from inside (no CAP_SYS_ADMIN there; a nested user namespace gets the mount locked).
    const re = await sh(ro, ALPHA, 'mount -o remount,rw /mnt/ro 2>&1; unshare -Urm sh -c "mount -o remount,rw /mnt/ro && touch /mnt/ro/y" 2>&1; ls -A /mnt/ro | wc -l');
    expect(re.body.stdout.trim().split('\n').at(-1)).toBe('0');
    // The executor fills a read-only volume once, at create; a client's tar at its path is refused.
    const put = await fetch(`${k.url}/api/v1/sessions/${ro}/files/tar?path=/mnt/ro`, { method: 'PUT', headers: as(ALPHA), body: tarOf(entry('x.txt', '0', Buffer.from('x'))) });
    expect(put.status).toBeGreaterThanOrEqual(400);
    expect(put.status).toBeLessThan(500);
    expect((await sh(ro, ALPHA, 'ls -A /mnt/ro | wc -l')).body.stdout.trim()).toBe('0');
    const s = await sync(ro, v.name, ALPHA);
    expect(s.status).toBe(409);
    expect(s.body.error.code).toBe('VolumeNotSynced');
    await end(ro, ALPHA);
  });

  it('links a sandbox plants are stored as links and never followed on the way out', { timeout: 120_000 }, async () => {
    const v = await volume(ALPHA, 2);
    const a = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(a, ALPHA, 'ln -s / /mnt/data/root && ln -s /etc/passwd /mnt/data/pw && ln -s ../../.. /mnt/data/up')).body.exitCode).toBe(0);
    const s = await sync(a, v.name, ALPHA);
    expect(s.status, JSON.stringify(s.body)).toBe(200);
    // Three links and the directory: headers only, nothing of / or /etc/passwd.
    expect(s.body.bytes).toBeLessThan(20_000);
    const stored = readFileSync(await blobFile(v));
    expect(stored.includes(Buffer.from('root:x:0:0'))).toBe(false);
    await end(a, ALPHA);
    const b = await session(ALPHA, [{ name: v.name, path: '/mnt/data', readOnly: true }]);
    expect((await sh(b, ALPHA, 'readlink /mnt/data/root /mnt/data/pw /mnt/data/up')).body.stdout).toBe('/\n/etc/passwd\n../../..\n');
    await end(b, ALPHA);
  });

  it('a hostile archive in the blob store (a link then a write through it, "..", an absolute name, a device) is refused whole and writes nothing', { timeout: 180_000 }, async () => {
    const v = await volume(ALPHA, 2);
    const a = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(a, ALPHA, 'echo good > /mnt/data/good.txt')).body.exitCode).toBe(0);
    expect((await sync(a, v.name, ALPHA)).status).toBe(200);
    await end(a, ALPHA);
    const file = await blobFile(v);
    const target = join(k.dataDir, `escaped-${randomBytes(3).toString('hex')}`);
    const hostile = [
      tarOf(entry('out', '2', Buffer.alloc(0), dirname(target)), entry(`out/${target.split('/').pop() as string}`, '0', Buffer.from('pwned'))),
      tarOf(entry(`../../../../../../..${target}`, '0', Buffer.from('pwned'))),
      tarOf(entry(target.slice(1), '0', Buffer.from('ok')), entry(target, '0', Buffer.from('pwned'))),
      tarOf(entry('dev', '3')),
      tarOf(entry('hl', '1', Buffer.alloc(0), '../../../../etc/passwd')),
    ];
    for (const [i, tar] of hostile.entries()) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, tar);
      const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/data' }] }, as(ALPHA));
      if (res.status === 201) sessions.push({ id: res.body.id as string, key: ALPHA });
      expect(res.status, `archive ${i}: ${JSON.stringify(res.body)}`).toBe(500);
      expect(res.body.error.code).toBe('UnsafeArchive');
      expect(existsSync(target)).toBe(false);
    }
    // Nothing was left half made: no session of the tenant, and the volume takes a writer again.
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(ALPHA))).body.sessions.filter((s: { volumes?: unknown[] }) => s.volumes).length).toBe(0);
    writeFileSync(file, tarOf(entry('fine.txt', '0', Buffer.from('fine'))));
    const ok = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(ok, ALPHA, 'cat /mnt/data/fine.txt')).body.stdout).toBe('fine');
    await end(ok, ALPHA);
  });

  it('one read-write session at a time; read-only mounts see the generation of their create', { timeout: 120_000 }, async () => {
    const v = await volume(ALPHA, 2);
    const w = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    const second = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/data' }] }, as(ALPHA));
    expect(second.status, JSON.stringify(second.body)).toBe(409);
    expect(second.body.error).toMatchObject({ code: 'VolumeInUse', data: { sessions: [w] } });
    expect((await sh(w, ALPHA, 'echo v1 > /mnt/data/f')).body.exitCode).toBe(0);
    // Through the TypeScript SDK's kiln.volumes.sync.
    expect(await new Kiln({ url: k.url, apiKey: ALPHA }).volumes.sync(w, v.name)).toMatchObject({ name: v.name, mode: 'synced', generation: 1 });
    const r1 = await session(ALPHA, [{ name: v.name, path: '/mnt/data', readOnly: true }]);
    expect((await sh(w, ALPHA, 'echo v2 > /mnt/data/f')).body.exitCode).toBe(0);
    expect((await sync(w, v.name, ALPHA)).body.generation).toBe(2);
    expect((await sh(r1, ALPHA, 'cat /mnt/data/f')).body.stdout).toBe('v1\n');
    await end(w, ALPHA);
    // The writer is gone: another read-write session may take it, and starts from the last generation.
    const w2 = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(w2, ALPHA, 'cat /mnt/data/f')).body.stdout).toBe('v2\n');
    // A volume in use is not deleted.
    expect((await k.call('DELETE', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).status).toBe(409);
    await end(w2, ALPHA);
    await end(r1, ALPHA);
  });

  it('a session the reaper ends at its timeout stores its volume first', { timeout: 120_000 }, async () => {
    const v = await volume(ALPHA, 2);
    const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/data' }], timeoutMs: 4000 }, as(ALPHA));
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const id = res.body.id as string;
    expect((await sh(id, ALPHA, 'echo reaped > /mnt/data/r.txt')).body.exitCode).toBe(0);
    await until('the reaper to end the session', async () => (await k.call('GET', `/api/v1/sessions/${id}`, undefined, as(ALPHA))).status === 404, 60_000);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).body.generation).toBe(1);
    const next = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(next, ALPHA, 'cat /mnt/data/r.txt')).body.stdout).toBe('reaped\n');
    await end(next, ALPHA);
  });

  it('code that stops the tar packing its volume stalls neither the sync route nor DELETE; a session that lost the writer claim cannot overwrite the volume', { timeout: 120_000 }, async () => {
    const v = await volume(ALPHA);
    const a = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(a, ALPHA, 'echo kept > /mnt/data/a.txt')).body.exitCode).toBe(0);
    expect((await sync(a, v.name, ALPHA)).status).toBe(200);
    // A loop in the sandbox stops every tar it sees (same uid, same PID namespace as the packing tar).
    // Shell builtins only, so each pass over /proc takes about a millisecond; 800 files make the tar last longer than that.
    const stopper = 'while :; do for p in /proc/[0-9]*; do read c < $p/comm 2>/dev/null && [ "$c" = tar ] && kill -STOP ${p#/proc/} 2>/dev/null; done; done';
    expect((await sh(a, ALPHA, 'i=0; while [ $i -lt 800 ]; do echo $i > /mnt/data/f$i; i=$((i+1)); done')).body.exitCode).toBe(0);
    expect((await k.call('POST', `/api/v1/sessions/${a}/processes`, { command: stopper, shell: true }, as(ALPHA))).status).toBe(201);
    expect((await sh(a, ALPHA, 'echo lost > /mnt/data/a.txt')).body.exitCode).toBe(0);
    const stalled = await sync(a, v.name, ALPHA);
    expect(stalled.status, JSON.stringify(stalled.body)).toBe(504);
    expect(stalled.body.error.code).toBe('VolumeSyncStalled');
    // DELETE ends it anyway; the volume keeps generation 1.
    await end(a, ALPHA);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).body.generation).toBe(1);

    // A session whose writer claim another session took over (a create that outlived the claim's grace) may not store.
    const b = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    expect((await sh(b, ALPHA, 'cat /mnt/data/a.txt && echo from-b > /mnt/data/a.txt')).body.stdout).toBe('kept\n');
    await k.redis.set(`${k.prefix}:volwriter:${v.id}`, 'another-session|0');
    const refused = await sync(b, v.name, ALPHA);
    expect(refused.status, JSON.stringify(refused.body)).toBe(409);
    expect(refused.body.error.code).toBe('VolumeSyncConflict');
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).body.generation).toBe(1);
    await k.redis.del(`${k.prefix}:volwriter:${v.id}`);
    await end(b, ALPHA);
  });

  it('another tenant finds neither the volume nor the sync route; a read-only key cannot sync', { timeout: 120_000 }, async () => {
    const v = await volume(ALPHA, 2);
    const a = await session(ALPHA, [{ name: v.name, path: '/mnt/data' }]);
    const other = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/data' }] }, as(BETA));
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('VolumeNotFound');
    const bsync = await sync(a, v.name, BETA);
    expect(bsync.status).toBe(404);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(BETA))).status).toBe(404);
    // Unknown volume names on the session are 404 too.
    expect((await sync(a, 'nope', ALPHA)).status).toBe(404);
    await end(a, ALPHA);

    // A tenant's key with only the `read` scope sees the volume but cannot sync it.
    const tenant = `g${randomBytes(3).toString('hex')}`;
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: tenant }, as(ADMIN))).status).toBe(201);
    const writer = (await k.call('POST', `/api/v1/admin/tenants/${tenant}/keys`, { scopes: ['read', 'sessions'] }, as(ADMIN))).body.key as string;
    const reader = (await k.call('POST', `/api/v1/admin/tenants/${tenant}/keys`, { scopes: ['read'] }, as(ADMIN))).body.key as string;
    const gv = await volume(writer, 2);
    // KILN_QUOTA_VOLUME_MB (100 here) counts both modes together.
    const local = await k.call('POST', '/api/v1/volumes', { name: `${tenant}-local`, sizeMB: 60, mode: 'local' }, as(writer));
    expect(local.status, JSON.stringify(local.body)).toBe(201);
    const over = await k.call('POST', '/api/v1/volumes', { name: `${tenant}-over`, sizeMB: 40, mode: 'synced' }, as(writer));
    expect(over.status).toBe(429);
    expect(over.body.error.data).toMatchObject({ quota: 'volumeMB', used: 62, limit: 100 });
    expect((await k.call('DELETE', `/api/v1/volumes/${tenant}-local`, undefined, as(writer))).status).toBe(204);
    expect((await k.call('POST', '/api/v1/volumes', { name: `${tenant}-bad`, sizeMB: 1, mode: 'nfs' }, as(writer))).status).toBe(400);
    const g = await session(writer, [{ name: gv.name, path: '/mnt/data' }]);
    expect((await k.call('GET', `/api/v1/volumes/${gv.name}`, undefined, as(reader))).status).toBe(200);
    const denied = await sync(g, gv.name, reader);
    expect(denied.status).toBe(403);
    expect((await sync(g, gv.name, writer)).status).toBe(200);
    await end(g, writer);
  });
});
