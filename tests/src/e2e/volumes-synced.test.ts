import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processDeployment, startKilnProcess, type KilnProcess } from '../support/kiln.js';
import { containersOf, removeDeployment, requirePodman, startPodman, type PodmanService } from '../support/podman.js';

requirePodman();

/**
 * Synced volumes on the docker platform (a real Podman service, executors in containers, a real
 * control-plane process): the volume's content is an archive per generation in the blob store,
 * copied into each session's sandbox at create and back at sync, at hibernation and at the
 * session's end. One read-write session at a time; read-only ones see the generation of their
 * create and take no write; a sync past the size keeps the previous generation; the volume and a
 * session's unsynced writes survive a SIGKILL of the control plane; a hostile archive put in the
 * blob store is refused. The attacks in depth: security/volumes-synced.test.ts (local platform).
 */
const KEY = 'volsync-docker-key-0123456789abcdef01';
const OTHER = 'volsync-docker-other-0123456789abcdef';
const ADMIN = 'volsync-docker-admin-0123456789abcdef';
const d = processDeployment({ nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null }, KEY, {
  KILN_API_KEYS: `alpha:${KEY},beta:${OTHER}`,
  KILN_ADMIN_API_KEYS: ADMIN,
  KILN_NFS_ENABLED: 'false',
  KILN_VOLUME_MAX_MB: '64',
  KILN_QUOTA_VOLUME_MB: '100',
});
let podman: PodmanService;
let cp: KilnProcess | undefined;
const TEMPLATE = 'node-docker';

beforeAll(async () => {
  podman = await startPodman({ templates: ['nodejs'] });
  d.env.KILN_DOCKER_HOST = podman.host;
  cp = await startKilnProcess(d.env);
  const t = await fetch(`${cp.url}/api/v1/templates`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: TEMPLATE, image: 'localhost/kiln/template-nodejs:0.1.0', runtimes: ['nodejs20.x'], platform: 'docker', pool: { minIdle: 0, sandboxesPerExecutor: 4, maxSandboxes: 4 } }),
  });
  expect(t.status, await t.clone().text()).toBe(201);
}, 600_000);

afterAll(async () => {
  try {
    await d.cleanup(cp);
    await removeDeployment(podman.docker, d.prefix);
  } finally {
    await podman?.stop();
  }
}, 120_000);

const call = (method: string, path: string, body?: unknown) => d.call(cp, method, path, body);
const sh = (id: string, line: string) => call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 });
const sync = (id: string, name: string) => call('POST', `/api/v1/sessions/${id}/volumes/${name}/sync`);
async function session(volumes: unknown[]): Promise<string> {
  const res = await call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes, timeoutMs: 600_000 });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}
async function end(id: string): Promise<void> {
  const res = await call('DELETE', `/api/v1/sessions/${id}`);
  expect(res.status, JSON.stringify(res.body)).toBe(204);
}
const generation = async (name: string): Promise<number> => (await call('GET', `/api/v1/volumes/${name}`)).body.generation as number;

describe('synced volumes on the docker platform (podman)', () => {
  it('carry one session\'s writes to the next, one writer at a time; read-only mounts refuse writes and keep the generation of their create', { timeout: 300_000 }, async () => {
    const name = `dv-${randomBytes(3).toString('hex')}`;
    // A local volume is an image on the local platform's host: docker templates refuse it.
    const local = await call('POST', '/api/v1/volumes', { name: `${name}-l`, sizeMB: 4, mode: 'local' });
    expect(local.status).toBe(201);
    const refused = await call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes: [{ name: `${name}-l`, path: '/mnt/l' }] });
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('VolumesUnsupportedOnPlatform');
    expect((await call('DELETE', `/api/v1/volumes/${name}-l`)).status).toBe(204);

    expect((await call('POST', '/api/v1/volumes', { name, sizeMB: 8, mode: 'synced' })).status).toBe(201);
    const writer = await session([{ name, path: '/mnt/data' }]);
    // In a container of this deployment, not a local executor.
    expect((await containersOf(podman.docker, d.prefix)).filter((c) => c.State === 'running').length).toBeGreaterThan(0);
    expect((await call('GET', `/api/v1/sessions/${writer}`)).body.template).toBe(TEMPLATE);
    expect((await sh(writer, 'echo from-docker > /mnt/data/a.txt && mkdir /mnt/data/d && seq 1 1000 > /mnt/data/d/n')).body.exitCode).toBe(0);
    const busy = await call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes: [{ name, path: '/mnt/data' }] });
    expect(busy.status, JSON.stringify(busy.body)).toBe(409);
    expect(busy.body.error).toMatchObject({ code: 'VolumeInUse', data: { sessions: [writer] } });
    const s1 = await sync(writer, name);
    expect(s1.status, JSON.stringify(s1.body)).toBe(200);
    expect(s1.body).toMatchObject({ mode: 'synced', generation: 1 });

    const reader = await session([{ name, path: '/mnt/in', readOnly: true }]);
    expect((await sh(reader, 'cat /mnt/in/a.txt && wc -l < /mnt/in/d/n')).body.stdout).toBe('from-docker\n1000\n');
    const w = await sh(reader, 'echo x > /mnt/in/a.txt 2>&1; touch /mnt/in/new 2>&1; cat /mnt/in/a.txt');
    expect(w.body.stdout).toMatch(/Read-only file system/);
    expect(w.body.stdout).toMatch(/from-docker\n$/);

    // The writer goes on; the reader keeps generation 1; the writer's end stores generation 2.
    expect((await sh(writer, 'echo more >> /mnt/data/a.txt')).body.exitCode).toBe(0);
    await end(writer);
    expect(await generation(name)).toBe(2);
    expect((await sh(reader, 'cat /mnt/in/a.txt')).body.stdout).toBe('from-docker\n');
    const next = await session([{ name, path: '/mnt/data' }]);
    expect((await sh(next, 'cat /mnt/data/a.txt')).body.stdout).toBe('from-docker\nmore\n');

    // A sync past the size (a sparse file: no pages in the tmpfs, its full length in an archive) keeps generation 2.
    expect((await sh(next, 'truncate -s 40M /mnt/data/sparse && echo lost > /mnt/data/a.txt')).body.exitCode).toBe(0);
    const tooBig = await sync(next, name);
    expect(tooBig.status, JSON.stringify(tooBig.body)).toBe(413);
    expect(tooBig.body.error.code).toBe('VolumeTooLarge');
    expect(await generation(name)).toBe(2);
    expect((await sh(next, 'rm /mnt/data/sparse && echo kept > /mnt/data/a.txt')).body.exitCode).toBe(0);
    await end(next);
    await end(reader);
    expect(await generation(name)).toBe(3);

    // Another tenant finds neither the volume nor its sessions' sync.
    const other = await fetch(`${cp?.url}/api/v1/volumes/${name}`, { headers: { authorization: `Bearer ${OTHER}` } });
    expect(other.status).toBe(404);
    expect((await call('DELETE', `/api/v1/volumes/${name}`)).status).toBe(204);
  });

  it('keeps a volume and a live writer\'s unsynced writes through a SIGKILL of the control plane and through hibernation', { timeout: 300_000 }, async () => {
    const name = `dr-${randomBytes(3).toString('hex')}`;
    expect((await call('POST', '/api/v1/volumes', { name, sizeMB: 4, mode: 'synced' })).status).toBe(201);
    const writer = await session([{ name, path: '/mnt/keep' }]);
    expect((await sh(writer, 'echo before > /mnt/keep/f')).body.exitCode).toBe(0);
    expect((await sync(writer, name)).status).toBe(200);

    await cp?.kill('SIGKILL');
    cp = await startKilnProcess(d.env);
    expect(await generation(name)).toBe(1);
    // The writer is still the writer after the restart.
    const busy = await call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes: [{ name, path: '/mnt/keep' }] });
    expect(busy.status).toBe(409);
    expect((await sh(writer, 'echo after >> /mnt/keep/f')).body.exitCode).toBe(0);

    // Hibernation stores the volume; the restored sandbox is filled from it.
    const hib = await call('POST', `/api/v1/sessions/${writer}/hibernate`);
    expect(hib.status, JSON.stringify(hib.body)).toBe(200);
    expect(await generation(name)).toBe(2);
    const resumed = await call('POST', `/api/v1/sessions/${writer}/resume`);
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect((await sh(writer, 'cat /mnt/keep/f')).body.stdout).toBe('before\nafter\n');
    await end(writer);

    const reader = await session([{ name, path: '/mnt/keep', readOnly: true }]);
    expect((await sh(reader, 'cat /mnt/keep/f')).body.stdout).toBe('before\nafter\n');
    await end(reader);
    expect((await call('DELETE', `/api/v1/volumes/${name}`)).status).toBe(204);
  });

  it('refuses a hostile archive put in the blob store (a link out, then a write through it)', { timeout: 180_000 }, async () => {
    const name = `dh-${randomBytes(3).toString('hex')}`;
    expect((await call('POST', '/api/v1/volumes', { name, sizeMB: 2, mode: 'synced' })).status).toBe(201);
    const a = await session([{ name, path: '/mnt/data' }]);
    expect((await sh(a, 'echo ok > /mnt/data/ok')).body.exitCode).toBe(0);
    await end(a);
    const raw = await d.redis.hget(`${d.prefix}:vols:alpha`, name);
    const blob = (JSON.parse(raw ?? '{}') as { blob: string }).blob;
    const hostile = Buffer.concat([header('out', '2', 0, '/tmp'), header('out/pwned', '0', 5), Buffer.from('pwned'.padEnd(512, '\0')), Buffer.alloc(1024)]);
    writeFileSync(join(d.dirs.dataDir, 'blobs', ...blob.split('/')), hostile);
    const res = await call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes: [{ name, path: '/mnt/data' }] });
    expect(res.status, JSON.stringify(res.body)).toBe(500);
    expect(res.body.error.code).toBe('UnsafeArchive');
    // The refused create left no writer behind.
    const ro = await call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes: [{ name, path: '/mnt/data', readOnly: true }] });
    expect(ro.status).toBe(500);
    expect((await call('DELETE', `/api/v1/volumes/${name}`)).status).toBe(204);
  });
});

/** One ustar header. */
function header(name: string, type: string, size: number, link = ''): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write(link, 157, 100);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}
