import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executorPids } from '../support/faults.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { waitFor } from '../support/wait.js';

/**
 * Named volumes around their sessions: per-tenant count and size quotas an administrator sets
 * (and nobody else can), a volume's image unmounted from the host once no session uses it and
 * mounted again, with its data, by the next (a create racing the unmount included), and volumes
 * on the other create surfaces: MCP's sandbox_create through the official client and E2B's
 * `volumeMounts` through the official `e2b` SDK. Keys are in E2B's format so one key serves all.
 */
const ALPHA = 'e2b_a1a1a1a1f00d56789abcdef0123456789abcdef';
const BETA = 'e2b_b2b2b2b2f00d56789abcdef0123456789abcdef';
const ADMIN = 'e2b_adadadadf00d56789abcdef0123456789abcdef';
const as = (key: string) => ({ authorization: `Bearer ${key}` });
/** The executors' idle clock: short, so that the tests see unmounts (and races with them) soon. */
const IDLE_MS = 300;

let k: TestKiln;
const sessions: Array<{ id: string; key: string }> = [];
const volumes: Array<{ name: string; key: string }> = [];

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 1, maxSandboxes: 8, sandboxesPerExecutor: 8 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_VOLUME_MAX_MB: '64', KILN_VOLUME_IDLE_UNMOUNT_MS: String(IDLE_MS) },
  });
  process.env.E2B_API_URL = `${k.url}/e2b`;
  process.env.E2B_SANDBOX_URL = `${k.url}/e2b/sandbox`;
}, 120_000);
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
async function sh(id: string, key: string, line: string): Promise<string> {
  const res = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 }, as(key));
  expect(res.body.exitCode, JSON.stringify(res.body)).toBe(0);
  return res.body.stdout as string;
}
const volumeDir = (v: { tenant: string; id: string }) => join(k.dataDir, 'volumes', createHash('sha256').update(v.tenant).digest('hex').slice(0, 32), v.id);
/** Whether the host (this process's mount namespace is the executors') has the volume's image mounted. */
const mounted = (v: { tenant: string; id: string }): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === join(volumeDir(v), 'mnt'));
/** Loop devices backed by the volume's image. */
const loops = (v: { tenant: string; id: string }): string => execFileSync('losetup', ['-j', join(volumeDir(v), 'image')], { encoding: 'utf8' }).trim();
const unmounted = (v: { tenant: string; id: string }) => waitFor(`volume ${v.id} unmounted`, () => Promise.resolve(mounted(v) ? undefined : true), 30_000, 50);

describe('per-tenant volume quotas', () => {
  it('an administrator sets a tenant\'s volume count and size; its creates past them are 429, another tenant is unaffected, and no other key can set them', async () => {
    const [a, b] = [`vqa-${randomBytes(3).toString('hex')}`, `vqb-${randomBytes(3).toString('hex')}`];
    for (const id of [a, b]) expect((await k.call('POST', '/api/v1/admin/tenants', { id }, as(ADMIN))).status).toBe(201);
    // Set before the tenant's first request (each replica caches a tenant's limits for 5 s).
    const set = await k.call('PATCH', `/api/v1/admin/tenants/${a}`, { quotas: { volumes: 1, volumeMB: 8 } }, as(ADMIN));
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body.quotas).toEqual({ volumes: 1, volumeMB: 8 });
    const keyA = (await k.call('POST', `/api/v1/admin/tenants/${a}/keys`, {}, as(ADMIN))).body.key as string;
    const keyB = (await k.call('POST', `/api/v1/admin/tenants/${b}/keys`, {}, as(ADMIN))).body.key as string;
    for (const bad of [{ volumes: -1 }, { volumes: 1.5 }, { volumeMB: 'big' }, { volumez: 1 }]) {
      const res = await k.call('PATCH', `/api/v1/admin/tenants/${a}`, { quotas: bad }, as(ADMIN));
      expect([res.status, res.body.error?.code], JSON.stringify(bad)).toEqual([400, 'InvalidRequest']);
    }

    const tooBig = await k.call('POST', '/api/v1/volumes', { name: 'big', sizeMB: 16 }, as(keyA));
    expect(tooBig.status).toBe(429);
    expect(tooBig.body.error).toMatchObject({ code: 'QuotaExceeded', data: { quota: 'volumeMB', limit: 8, used: 0 } });
    await volume(keyA, 4);
    const second = await k.call('POST', '/api/v1/volumes', { name: 'second', sizeMB: 1 }, as(keyA));
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('60');
    expect(second.body.error).toMatchObject({ code: 'QuotaExceeded', data: { quota: 'volumes', limit: 1, used: 1 } });
    expect(second.body.error.message).toContain('quotas.volumes');
    // Tenant b has the deployment's defaults.
    await volume(keyB, 16);
    await volume(keyB, 16);

    // Neither the tenant's own key nor another tenant's may change them.
    for (const key of [keyA, keyB, ALPHA]) {
      const res = await k.call('PATCH', `/api/v1/admin/tenants/${a}`, { quotas: { volumes: 100 } }, as(key));
      expect([res.status, res.body.error?.code]).toEqual([403, 'Forbidden']);
    }
    expect((await k.call('GET', '/api/v1/admin/tenants', undefined, as(ADMIN))).body.tenants.find((t: { id: string }) => t.id === a).quotas).toEqual({ volumes: 1, volumeMB: 8 });
    expect((await k.call('POST', '/api/v1/volumes', { name: 'still', sizeMB: 1 }, as(keyA))).status).toBe(429);
  });
});

describe('idle volumes are unmounted', () => {
  it('after the last session using a volume ends its image is unmounted (no loop device left), and the next session mounts it again with the data', async () => {
    const v = await volume(ALPHA);
    const s1 = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    await sh(s1, ALPHA, 'echo first > /mnt/v/data && sync');
    expect(mounted(v)).toBe(true);
    expect(loops(v)).not.toBe('');
    await end(s1, ALPHA);
    await unmounted(v);
    expect(loops(v)).toBe('');

    const s2 = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    expect(mounted(v)).toBe(true);
    expect(await sh(s2, ALPHA, 'cat /mnt/v/data')).toBe('first\n');
    // A second user: the first one's end leaves it mounted for the other.
    const s3 = await session(ALPHA, [{ name: v.name, path: '/mnt/v', readOnly: true }]);
    await end(s2, ALPHA);
    await new Promise((r) => setTimeout(r, IDLE_MS * 5));
    expect(mounted(v)).toBe(true);
    expect(await sh(s3, ALPHA, 'cat /mnt/v/data')).toBe('first\n');
    await end(s3, ALPHA);
    await unmounted(v);
  }, 120_000);

  it('a hibernated session frees its volume (unmounted) and its resume mounts it again', async () => {
    const v = await volume(ALPHA);
    const s = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    await sh(s, ALPHA, 'echo kept > /mnt/v/f && sync');
    const hib = await k.call('POST', `/api/v1/sessions/${s}/hibernate`, undefined, as(ALPHA));
    expect(hib.status, JSON.stringify(hib.body)).toBe(200);
    await unmounted(v);
    // Still a user of the volume for the control plane: DELETE refuses.
    expect((await k.call('DELETE', `/api/v1/volumes/${v.name}`, undefined, as(ALPHA))).status).toBe(409);
    const resumed = await k.call('POST', `/api/v1/sessions/${s}/resume`, undefined, as(ALPHA));
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(mounted(v)).toBe(true);
    expect(await sh(s, ALPHA, 'cat /mnt/v/f')).toBe('kept\n');
    await end(s, ALPHA);
    await unmounted(v);
  }, 120_000);

  it('a create racing the unmount always gets the mounted volume, never the empty directory under it', async () => {
    const v = await volume(ALPHA);
    const s0 = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    await sh(s0, ALPHA, 'echo 0 > /mnt/v/count');
    await end(s0, ALPHA);
    // Waits around the idle clock: some creates land before it runs out, some during the
    // unmount, some after it.
    for (let i = 1; i <= 10; i++) {
      await new Promise((r) => setTimeout(r, (i * 97) % (IDLE_MS * 2)));
      const s = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
      expect(await sh(s, ALPHA, 'cat /mnt/v/count'), `round ${i}`).toBe(`${i - 1}\n`);
      await sh(s, ALPHA, `echo ${i} > /mnt/v/count && sync`);
      await end(s, ALPHA);
    }
    await unmounted(v);
    // Nothing was ever written into the mount point's own directory on the host disk.
    expect(execFileSync('ls', ['-A', join(volumeDir(v), 'mnt')], { encoding: 'utf8' })).toBe('');
    const last = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    expect(await sh(last, ALPHA, 'cat /mnt/v/count')).toBe('10\n');
    await end(last, ALPHA);
  }, 300_000);

  it('a sandbox whose hold was lost (its volume helper killed) still keeps the volume mounted: the kernel says it is in use', async () => {
    const v = await volume(ALPHA);
    const s1 = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    await sh(s1, ALPHA, 'echo one > /mnt/v/f && sync');
    // Every volume helper of this Kiln's executors: perl children of an executor running the
    // volume jobs. Killed, they drop every lock they held; the next request starts them again.
    const executors = new Set(executorPids(k.dataDir).map((e) => e.pid));
    const helpers = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const ppid = Number(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
          return executors.has(ppid) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('volume_hold');
        } catch {
          return false; // gone meanwhile
        }
      })
      .map(Number);
    expect(helpers.length).toBeGreaterThan(0);
    for (const pid of helpers) process.kill(pid, 'SIGKILL');
    // Another session of the volume comes and goes: its release starts the idle clock, and the
    // unmount finds the users file free (s1's lock went with its helper).
    const s2 = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    await end(s2, ALPHA);
    await new Promise((r) => setTimeout(r, IDLE_MS * 6));
    expect(mounted(v)).toBe(true);
    // One filesystem, one loop device: a third session shares s1's, and each sees the other's writes.
    const s3 = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    expect(loops(v).split('\n')).toHaveLength(1);
    await sh(s3, ALPHA, 'echo three >> /mnt/v/f');
    expect(await sh(s1, ALPHA, 'cat /mnt/v/f')).toBe('one\nthree\n');
    await end(s3, ALPHA);
    await end(s1, ALPHA);
  }, 120_000);
});

type Result = { isError?: boolean; structuredContent?: any; content: Array<{ type: string; text?: string }> };
async function withMcp<T>(key: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/full`), { requestInit: { headers: as(key) } });
  const client = new Client({ name: 'volumes-test', version: '1.0.0' });
  await client.connect(transport);
  try {
    return await fn(client);
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close();
  }
}
const tool = async (c: Client, name: string, args: Record<string, unknown>): Promise<Result> => (await c.callTool({ name, arguments: args })) as Result;

describe('volumes on the MCP and E2B creates', () => {
  it('MCP sandbox_create takes volumes as REST does: mounted, paths and tenancy checked by the same service', async () => {
    const v = await volume(ALPHA);
    const seed = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    await sh(seed, ALPHA, 'echo from-rest > /mnt/v/f');
    await end(seed, ALPHA);
    await withMcp(ALPHA, async (c) => {
      const listed = (await c.listTools()).tools.find((t) => t.name === 'sandbox_create');
      expect((listed?.inputSchema.properties?.volumes as { description?: string }).description).toMatch(/volume/i);
      const made = await tool(c, 'sandbox_create', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/data', readOnly: true }] });
      expect(made.isError, made.content.map((x) => x.text).join()).toBeFalsy();
      const id = made.structuredContent.sandboxId as string;
      sessions.push({ id, key: ALPHA });
      expect(made.structuredContent.volumes).toEqual([{ name: v.name, path: '/mnt/data', readOnly: true }]);
      const read = await tool(c, 'process_run', { sandbox_id: id, command: 'cat /mnt/data/f; touch /mnt/data/g 2>&1 || echo refused' });
      expect(read.structuredContent.stdout).toContain('from-rest');
      expect(read.structuredContent.stdout).toMatch(/Read-only file system[\s\S]*refused/);
      expect((await tool(c, 'sandbox_delete', { sandbox_id: id })).isError).toBeFalsy();

      const outside = await tool(c, 'sandbox_create', { template: 'nodejs', volumes: [{ name: v.name, path: '/etc/x' }] });
      expect(outside.isError).toBe(true);
      expect(outside.structuredContent.error.code).toBe('InvalidRequest');
      const unknownField = await tool(c, 'sandbox_create', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/x', hostPath: '/' }] });
      expect(unknownField.isError).toBe(true);
    });
    // Beta's key: alpha's volume does not exist for it.
    await withMcp(BETA, async (c) => {
      const other = await tool(c, 'sandbox_create', { template: 'nodejs', volumes: [{ name: v.name, path: '/mnt/v' }] });
      expect(other.isError).toBe(true);
      expect(other.structuredContent.error.code).toBe('VolumeNotFound');
    });
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(BETA))).body.sessions).toEqual([]);
  }, 120_000);

  it('E2B\'s Sandbox.create with volumeMounts mounts Kiln volumes read-write; unknown, foreign and misplaced volumes are refused', async () => {
    const v = await volume(ALPHA);
    const sbx = await Sandbox.create('nodejs', { apiKey: ALPHA, volumeMounts: { '/mnt/work': v.name }, timeoutMs: 120_000 });
    sessions.push({ id: sbx.sandboxId, key: ALPHA });
    try {
      await sbx.commands.run('echo from-e2b > /mnt/work/f');
      expect((await sbx.commands.run('cat /mnt/work/f')).stdout).toBe('from-e2b\n');
      expect((await sbx.getInfo()).volumeMounts).toEqual([{ name: v.name, path: '/mnt/work' }]);
    } finally {
      await sbx.kill();
    }
    // The data outlives the E2B sandbox: a REST session reads it.
    const after = await session(ALPHA, [{ name: v.name, path: '/mnt/v' }]);
    expect(await sh(after, ALPHA, 'cat /mnt/v/f')).toBe('from-e2b\n');
    await end(after, ALPHA);

    // The SDK's create turns any status into a SandboxError with Kiln's message: status and code are in it.
    await expect(Sandbox.create('nodejs', { apiKey: ALPHA, volumeMounts: { '/mnt/work': 'no-such-volume' } })).rejects.toThrow(/^404: VolumeNotFound: volume "no-such-volume"/);
    await expect(Sandbox.create('nodejs', { apiKey: BETA, volumeMounts: { '/mnt/work': v.name } })).rejects.toThrow(/^404: VolumeNotFound/);
    await expect(Sandbox.create('nodejs', { apiKey: ALPHA, volumeMounts: { '/proc': v.name } })).rejects.toThrow(/^400: InvalidRequest: volumes\[0\]\.path "\/proc" must be absolute and under \/mnt\//);
    await expect(Sandbox.create('nodejs', { apiKey: ALPHA, volumeMounts: { '/mnt/a': v.name, '/mnt/a/b': v.name } })).rejects.toThrow(/^400: /);
    expect((await k.call('GET', '/api/v1/sessions', undefined, as(BETA))).body.sessions).toEqual([]);
  }, 120_000);
});
