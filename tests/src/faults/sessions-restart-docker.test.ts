import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { removeDataDir, startKilnProcess, testDirs, type KilnProcess } from '../support/kiln.js';
import { until } from '../support/faults.js';
import { containersOf, removeDeployment, requirePodman, startPodman, type PodmanService } from '../support/podman.js';

requirePodman();

/**
 * The docker platform shares start-up reconciliation with the local one (recovery.ts, through
 * the adapter's `list` by label; the agent token comes back from the container's env): a session
 * in a container survives a SIGKILL and a SIGTERM of the control plane with the default
 * settings, with its files and a background process still running; Ctrl-C (SIGINT) removes the
 * containers. Against a real Podman service.
 */
describe('docker platform sessions across control-plane restarts (podman)', () => {
  let podman: PodmanService;
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const dirs = testDirs({ nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null });
  const redis = new Redis({ path: inject('redisSocket') });
  let cp: KilnProcess | undefined;
  let env: Record<string, string> = {};

  beforeAll(async () => {
    podman = await startPodman({ templates: ['nodejs'] });
    env = {
      KILN_REDIS_URL: `unix://${inject('redisSocket')}`,
      KILN_REDIS_PREFIX: prefix,
      KILN_DATA_DIR: dirs.dataDir,
      KILN_TEMPLATES_DIR: dirs.templatesDir,
      KILN_DOCKER_HOST: podman.host,
      KILN_NFS_ENABLED: 'false',
    };
  }, 600_000);

  afterAll(async () => {
    try {
      await cp?.kill('SIGINT');
      await removeDeployment(podman.docker, prefix);
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      await removeDataDir(dirs.dataDir);
    } finally {
      await podman?.stop();
    }
  }, 120_000);

  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> => {
    const res = await fetch(`${cp?.url}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const ticks = async (id: string): Promise<number> => Number((await call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'sh', args: ['-c', 'wc -l < /workspace/ticks'] })).body.stdout);

  it('keeps a container session through SIGKILL and SIGTERM restarts, and Ctrl-C removes its containers', { timeout: 300_000 }, async () => {
    cp = await startKilnProcess(env);
    const template = await call('POST', '/api/v1/templates', {
      name: 'node-docker',
      image: 'localhost/kiln/template-nodejs:0.1.0',
      runtimes: ['nodejs20.x'],
      platform: 'docker',
      pool: { minIdle: 0, sandboxesPerExecutor: 2, maxSandboxes: 2 },
    });
    expect(template.status, JSON.stringify(template.body)).toBe(201);
    const created = await call('POST', '/api/v1/sessions', { template: 'node-docker' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const put = await fetch(`${cp.url}/api/v1/sessions/${id}/files?path=notes.txt`, { method: 'PUT', body: 'in a container' });
    expect(put.status).toBe(200);
    const counter = await call('POST', `/api/v1/sessions/${id}/processes`, { command: 'sh', args: ['-c', 'while true; do echo x >> /workspace/ticks; sleep 0.2; done'] });
    expect(counter.status, JSON.stringify(counter.body)).toBe(201);
    await until('the counter to tick', async () => (await ticks(id)) > 0, 30_000);
    const containers = (await containersOf(podman.docker, prefix)).map((c) => c.Id);
    expect(containers.length).toBeGreaterThan(0);

    for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
      await cp.kill(signal);
      const running = (await containersOf(podman.docker, prefix)).filter((c) => c.State === 'running').map((c) => c.Id);
      expect(running.sort(), `containers left running by ${signal}`).toEqual([...containers].sort());
      cp = await startKilnProcess(env);
      expect((await call('GET', `/api/v1/sessions/${id}`)).body.status).toBe('running');
      const file = await fetch(`${cp.url}/api/v1/sessions/${id}/files?path=notes.txt`);
      expect(await file.text()).toBe('in a container');
      const listed = (await call('GET', `/api/v1/sessions/${id}/processes`)).body.processes as Array<{ pid: number; exitCode: number | null }>;
      expect(listed.find((p) => p.pid === counter.body.pid), JSON.stringify(listed)).toMatchObject({ exitCode: null });
      const before = await ticks(id);
      await until(`the counter to go on counting after ${signal}`, async () => (await ticks(id)) > before, 30_000);
    }

    await cp.kill('SIGINT');
    cp = undefined;
    await until('the containers to be removed by Ctrl-C', async () => (await containersOf(podman.docker, prefix)).length === 0, 60_000);
    cp = await startKilnProcess(env);
    expect((await call('GET', `/api/v1/sessions/${id}`)).body).toMatchObject({ status: 'lost', lostReason: 'its executor was stopped with the control plane' });
    expect((await call('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
  });
});
