import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkVolumeRequests } from '../../../executor/dist/sandbox/volumes.js';
import { VolumeService } from '../../../control-plane/dist/volumes/service.js';
import { Keys } from '../../../control-plane/dist/store/keys.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * Attacks on named volumes, one per barrier THREAT-MODEL.md names: the path rules (a volume
 * never lands on /, /proc, /etc, ... and never over another), resolution on the executor by
 * (tenant, id) only with no link followed to or above a volume's mount point, read-only enforced
 * by the kernel's mount flag, the size limit (ENOSPC in the sandbox, the image on the host no
 * larger), tenancy (another tenant's volume does not exist for it) with scopes and quotas, and the
 * platforms that have no volumes.
 */
const ALPHA = 'volumes-alpha-key-0123456789abcdef0';
const BETA = 'volumes-beta-key-0123456789abcdef01';
const ADMIN = 'volumes-admin-key-0123456789abcdef0';
const as = (key: string) => ({ authorization: `Bearer ${key}` });

let k: TestKiln;
const sessions: Array<{ id: string; key: string }> = [];
const volumes: Array<{ name: string; key: string }> = [];

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 6, sandboxesPerExecutor: 6 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_VOLUME_MAX_MB: '64', KILN_QUOTA_VOLUME_MB: '100', KILN_QUOTA_VOLUMES: '12' },
  });
});
afterAll(async () => {
  for (const s of sessions) await k?.call('DELETE', `/api/v1/sessions/${s.id}`, undefined, as(s.key));
  for (const v of volumes) await k?.call('DELETE', `/api/v1/volumes/${v.name}`, undefined, as(v.key));
  await k?.stop();
});

async function volume(key: string, sizeMB = 4): Promise<{ name: string; id: string; tenant: string }> {
  const name = `v-${randomBytes(4).toString('hex')}`;
  const made = await k.call('POST', '/api/v1/volumes', { name, sizeMB }, as(key));
  expect(made.status, JSON.stringify(made.body)).toBe(201);
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
  expect((await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, as(key))).status).toBe(204);
}
const sh = (id: string, key: string, line: string) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 }, as(key));
const hostDir = (v: { tenant: string; id: string }) => join(k.dataDir, 'volumes', createHash('sha256').update(v.tenant).digest('hex').slice(0, 32), v.id);
const alphaSessions = async () => (await k.call('GET', '/api/v1/sessions', undefined, as(ALPHA))).body.sessions.length as number;

describe('volume paths', () => {
  it('refuses every path outside /mnt/, unnormalised, overlapping or repeated, and too many volumes, before any sandbox is taken', async () => {
    const v = await volume(ALPHA);
    const w = await volume(ALPHA);
    const before = await alphaSessions();
    const bad: Array<[unknown[], string]> = [
      [[{ name: v.name, path: '/' }], 'root'],
      [[{ name: v.name, path: '/proc' }], '/proc'],
      [[{ name: v.name, path: '/dev/shm' }], '/dev'],
      [[{ name: v.name, path: '/etc/ssl' }], '/etc'],
      [[{ name: v.name, path: '/usr/bin' }], '/usr'],
      [[{ name: v.name, path: '/workspace' }], '/workspace'],
      [[{ name: v.name, path: '/tmp/x' }], '/tmp'],
      [[{ name: v.name, path: '/mnt' }], '/mnt itself'],
      [[{ name: v.name, path: '/mnt/' }], 'trailing slash'],
      [[{ name: v.name, path: 'mnt/data' }], 'relative'],
      [[{ name: v.name, path: '/mnt/../etc' }], 'dot-dot'],
      [[{ name: v.name, path: '/mnt/./data' }], 'dot'],
      [[{ name: v.name, path: '/mnt//data' }], 'empty segment'],
      [[{ name: v.name, path: '/mnt/.hidden' }], 'leading dot'],
      [[{ name: v.name, path: '/mnt/a b' }], 'space'],
      [[{ name: v.name, path: '/mnt/a/b/c/d/e' }], 'too deep'],
      [[{ name: v.name, path: '/mnt/data' }, { name: w.name, path: '/mnt/data' }], 'same path'],
      [[{ name: v.name, path: '/mnt/data' }, { name: w.name, path: '/mnt/data/inner' }], 'nested'],
      [[{ name: v.name, path: '/mnt/a' }, { name: v.name, path: '/mnt/b' }], 'same volume twice'],
      [Array.from({ length: 9 }, (_, i) => ({ name: v.name, path: `/mnt/p${i}` })), 'nine volumes'],
      [[{ name: v.name, path: '/mnt/data', extra: true }], 'unknown field'],
    ];
    for (const [mounts, what] of bad) {
      const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: mounts }, as(ALPHA));
      expect(res.status, `${what}: ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error.code, what).toBe('InvalidRequest');
    }
    const unknown = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: 'no-such-volume', path: '/mnt/data' }] }, as(ALPHA));
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('VolumeNotFound');
    expect(await alphaSessions()).toBe(before);
  });

  it('is checked again by the executor, which takes no host path and no path outside /mnt/ from the control plane', () => {
    const ok = { tenantKey: 'a'.repeat(32), volumeId: `vol_${'b'.repeat(32)}`, sizeMB: 8, path: '/mnt/data', readOnly: false };
    expect(() => checkVolumeRequests([ok])).not.toThrow();
    for (const hostile of [
      { ...ok, tenantKey: '../../../../etc' },
      { ...ok, tenantKey: 'A'.repeat(32) },
      { ...ok, volumeId: 'vol_../../x' },
      { ...ok, volumeId: '/var/lib/docker' },
      { ...ok, path: '/proc' },
      { ...ok, path: '/mnt/../etc' },
      { ...ok, sizeMB: 0 },
    ]) {
      expect(() => checkVolumeRequests([hostile]), JSON.stringify(hostile)).toThrow(/volume/);
    }
    expect(() => checkVolumeRequests([ok, { ...ok, path: '/mnt/data/x', volumeId: `vol_${'c'.repeat(32)}` }])).toThrow(/overlap/);
  });
});

describe('links', () => {
  it('a link a session plants in a volume resolves in the next session\'s own namespace, never on the host', async () => {
    const v = await volume(ALPHA);
    const secret = mkdtempSync(join(tmpdir(), 'kiln-vol-secret-'));
    writeFileSync(join(secret, 'host-only.txt'), 'host secret');
    try {
      const planter = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
      const planted = await sh(planter, ALPHA, `ln -s /etc /mnt/v/etc-link && ln -s / /mnt/v/root-link && ln -s ${secret}/host-only.txt /mnt/v/secret-link && ln -s .. /mnt/v/up`);
      expect(planted.body.exitCode, planted.body.stderr).toBe(0);
      await end(planter, ALPHA);

      const reader = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
      // The sandbox's own synthetic /etc/passwd (sandbox:x:1000), not the host's.
      const passwd = await sh(reader, ALPHA, 'cat /mnt/v/etc-link/passwd');
      expect(passwd.body.stdout).toContain('sandbox:x:1000:1000');
      expect(passwd.body.stdout).not.toBe(readFileSync('/etc/passwd', 'utf8'));
      const leaked = await sh(reader, ALPHA, 'cat /mnt/v/secret-link; ls /mnt/v/root-link/ | tr "\\n" " "; ls /mnt/v/up/');
      expect(leaked.body.stdout).not.toContain('host secret');
      expect(leaked.body.stderr).toContain('No such file or directory');
      // `..` of the volume's root is the sandbox's /mnt, which holds only the volume.
      expect(leaked.body.stdout.trim().split(/\s+/).at(-1)).toBe('v');
      await end(reader, ALPHA);
    } finally {
      rmSync(secret, { recursive: true, force: true });
    }
  });

  it('refuses a volume whose directory or mount point on the host is a link, and mounts nothing at the link\'s target', async () => {
    const target = mkdtempSync(join(tmpdir(), 'kiln-vol-target-'));
    try {
      for (const which of ['mnt', 'volume dir'] as const) {
        const v = await volume(ALPHA);
        const dir = hostDir(v);
        // Done on the host before the volume's first mount: what a link planted there would do.
        if (which === 'mnt') {
          mkdirSync(dir, { recursive: true, mode: 0o711 });
          symlinkSync(target, join(dir, 'mnt'));
        } else {
          mkdirSync(join(dir, '..'), { recursive: true, mode: 0o711 });
          symlinkSync(target, dir);
        }
        const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/v' }] }, as(ALPHA));
        expect(res.status, JSON.stringify(res.body)).toBeGreaterThanOrEqual(500);
        expect(JSON.stringify(res.body)).toMatch(/symbolic link; refusing it/);
        expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(target);
        expect(readdirSync(target)).toEqual([]);
        expect(lstatSync(which === 'mnt' ? join(dir, 'mnt') : dir).isSymbolicLink()).toBe(true);
        rmSync(which === 'mnt' ? join(dir, 'mnt') : dir);
      }
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });
});

describe('read-only and size', () => {
  it('a read-only mount refuses writes, chmod and a remount from inside the sandbox', async () => {
    const v = await volume(ALPHA);
    const writer = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    expect((await sh(writer, ALPHA, 'echo keep > /mnt/v/f')).body.exitCode).toBe(0);
    const ro = await session(ALPHA, [{ name: v.name, path: '/mnt/v', readOnly: true }]);
    const tries = await sh(ro, ALPHA, 'echo x > /mnt/v/f; touch /mnt/v/g; chmod 777 /mnt/v/f; ln -s / /mnt/v/l; mount -o remount,rw /mnt/v; mount -o remount,bind,rw /mnt/v; echo y > /mnt/v/f; cat /mnt/v/f');
    expect(tries.body.stderr.match(/Read-only file system/g)?.length, tries.body.stderr).toBeGreaterThanOrEqual(5);
    expect(tries.body.stdout).toBe('keep\n');
    expect((await sh(writer, ALPHA, 'ls /mnt/v')).body.stdout).toBe('f\n');
    await end(ro, ALPHA);
    await end(writer, ALPHA);
  });

  it('writes past sizeMB fail with ENOSPC in the sandbox, and the image on the host is no larger', async () => {
    const v = await volume(ALPHA, 8);
    const s = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    const fill = await sh(s, ALPHA, 'dd if=/dev/urandom of=/mnt/v/big bs=1M count=20; s1=$?; for i in 1 2 3 4 5; do head -c 1048576 /dev/urandom > /mnt/v/more$i || break; done; echo "dd=$s1"; du -sm /mnt/v | cut -f1');
    expect(fill.body.stderr).toContain('No space left on device');
    expect(fill.body.stdout).toMatch(/dd=1\n/);
    expect(Number(fill.body.stdout.trim().split('\n').at(-1))).toBeLessThanOrEqual(8);
    const image = statSync(join(hostDir(v), 'image'));
    expect(image.size).toBe(8 * 1024 * 1024);
    expect(image.blocks * 512).toBeLessThanOrEqual(8 * 1024 * 1024);
    // Another volume of the same session's tenant is not touched by it.
    await end(s, ALPHA);
  });
});

describe('tenancy, scopes and quotas', () => {
  it('another tenant\'s volume does not exist for it: not listed, read, deleted or mounted, and its own of the same name is another volume', async () => {
    const v = await volume(ALPHA);
    const a = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    expect((await sh(a, ALPHA, 'echo alpha-data > /mnt/v/secret')).body.exitCode).toBe(0);
    await end(a, ALPHA);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(BETA))).status).toBe(404);
    const del = await k.call('DELETE', `/api/v1/volumes/${v.name}`, undefined, as(BETA));
    expect(del.status).toBe(404);
    expect(del.body.error.code).toBe('VolumeNotFound');
    expect((await k.call('GET', '/api/v1/volumes', undefined, as(BETA))).body.volumes.map((x: { name: string }) => x.name)).not.toContain(v.name);
    const mount = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/v' }] }, as(BETA));
    expect(mount.status).toBe(404);
    expect(mount.body.error.code).toBe('VolumeNotFound');
    // Beta's own volume of that name: another id, another image, empty.
    const mine = await k.call('POST', '/api/v1/volumes', { name: v.name, sizeMB: 4 }, as(BETA));
    expect(mine.status, JSON.stringify(mine.body)).toBe(201);
    volumes.push({ name: v.name, key: BETA });
    expect(mine.body.id).not.toBe(v.id);
    const b = await session(BETA, [{ name: v.name, path: '/mnt/v' }]);
    expect((await sh(b, BETA, 'ls -A /mnt/v | wc -l')).body.stdout.trim()).toBe('0');
    await end(b, BETA);
    // The Idempotency-Key of one tenant is not another's.
    const key = { 'idempotency-key': `same-${v.name}` };
    const ka = await k.call('POST', '/api/v1/volumes', { name: `${v.name}-k`, sizeMB: 1 }, { ...as(ALPHA), ...key });
    const kb = await k.call('POST', '/api/v1/volumes', { name: `${v.name}-k`, sizeMB: 1 }, { ...as(BETA), ...key });
    volumes.push({ name: `${v.name}-k`, key: ALPHA }, { name: `${v.name}-k`, key: BETA });
    expect(ka.status).toBe(201);
    expect(kb.status).toBe(201);
    expect(kb.headers.get('idempotent-replayed')).toBeNull();
    expect(kb.body.id).not.toBe(ka.body.id);
    expect((await k.call('DELETE', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).status).toBe(204);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(BETA))).body.id).toBe(mine.body.id);
  });

  it('a read-only key reads volumes but cannot make or delete one', async () => {
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'beta' }, as(ADMIN))).status).toBeLessThan(500);
    const reader = await k.call('POST', '/api/v1/admin/tenants/beta/keys', { scopes: ['read'] }, as(ADMIN));
    expect(reader.status, JSON.stringify(reader.body)).toBe(201);
    const key = reader.body.key as string;
    const v = await volume(BETA);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(key))).status).toBe(200);
    const made = await k.call('POST', '/api/v1/volumes', { name: 'by-reader', sizeMB: 1 }, as(key));
    expect(made.status).toBe(403);
    expect(made.body.error.code).toBe('Forbidden');
    expect((await k.call('DELETE', `/api/v1/volumes/${v.name}`, undefined, as(key))).status).toBe(403);
    expect((await k.call('GET', `/api/v1/volumes/${v.name}`, undefined, as(BETA))).status).toBe(200);
  });

  it('names, sizes, the tenant\'s total size and count are bounded', async () => {
    for (const name of ['', 'UPPER', '../x', 'a/b', '.hidden', '-x', 'x'.repeat(64)]) {
      const res = await k.call('POST', '/api/v1/volumes', { name, sizeMB: 1 }, as(ALPHA));
      expect(res.status, name).toBe(400);
    }
    for (const sizeMB of [0, -1, 1.5, 65, 1e12]) {
      const res = await k.call('POST', '/api/v1/volumes', { name: 'sized', sizeMB }, as(ALPHA));
      expect(res.status, String(sizeMB)).toBe(400);
    }
    expect((await k.call('GET', '/api/v1/volumes/..%2F..%2Fetc', undefined, as(ALPHA))).status).toBe(404);
    // A fresh tenant (gamma) so that the counts are this test's own.
    expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'gamma' }, as(ADMIN))).status).toBe(201);
    const gamma = (await k.call('POST', '/api/v1/admin/tenants/gamma/keys', { scopes: ['read', 'sessions'] }, as(ADMIN))).body.key as string;
    const big = await volume(gamma, 64);
    const over = await k.call('POST', '/api/v1/volumes', { name: 'over', sizeMB: 40 }, as(gamma));
    expect(over.status).toBe(429);
    expect(over.body.error).toMatchObject({ code: 'QuotaExceeded', data: { quota: 'volumeMB', limit: 100, used: 64 } });
    for (let i = 0; i < 11; i++) await volume(gamma, 1);
    const extra = await k.call('POST', '/api/v1/volumes', { name: 'extra', sizeMB: 1 }, as(gamma));
    expect(extra.status).toBe(429);
    expect(extra.body.error).toMatchObject({ code: 'QuotaExceeded', data: { quota: 'volumes', limit: 12, used: 12 } });
    expect((await k.call('DELETE', `/api/v1/volumes/${big.name}`, undefined, as(gamma))).status).toBe(204);
    const after = await k.call('POST', '/api/v1/volumes', { name: 'after', sizeMB: 40 }, as(gamma));
    expect(after.status, JSON.stringify(after.body)).toBe(201);
    volumes.push({ name: 'after', key: gamma });
  });

  it('a template on the docker or kubernetes platform refuses volumes with a code naming the platform', async () => {
    const service = new VolumeService(k.redis, new Keys(k.prefix), { hostDir: join(k.dataDir, 'volumes'), maxSizeMB: 64, quotaMB: 100, maxPerTenant: 12, defaultPlatform: 'local' }, { ended: (ids: string[]) => Promise.resolve(ids) });
    const v = await volume(ALPHA);
    const who = { tenant: 'alpha', keyId: 'test', scopes: ['sessions'] } as never;
    for (const platform of ['docker', 'kubernetes'] as const) {
      await expect(service.mountsFor('ses_x', [{ name: v.name, path: '/mnt/v' }], who, { name: 'remote', platform })).rejects.toMatchObject({ code: 'VolumesUnsupportedOnPlatform', status: 400, data: { platform } });
    }
    expect(await service.mountsFor('ses_y', [], who, { name: 'remote', platform: 'docker' })).toEqual([]);
  });
});
