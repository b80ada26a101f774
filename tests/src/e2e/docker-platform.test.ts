import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { containersOf, removeDeployment, requirePodman, startPodman, type PodmanService } from '../support/podman.js';

requirePodman();

const COUNTER = `let n = 0;\nexports.handler = async (event) => ({ n: ++n, got: event, node: process.version });\n`;

/**
 * A control plane whose default runtime is local, with one template that names
 * `executor: "docker"`: its executors are containers of a real Podman service.
 */
describe('docker platform, end to end (podman)', () => {
  let podman: PodmanService;
  let k: TestKiln | undefined;
  let prefix = '';

  beforeAll(async () => {
    podman = await startPodman({ templates: ['nodejs'] });
    k = await startTestKiln({
      templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null },
      env: { KILN_DOCKER_HOST: podman.host, KILN_NFS_PORT: '0' },
    });
    prefix = k.prefix;
  }, 600_000);

  afterAll(async () => {
    try {
      await k?.stop();
      // Asserted in the last case; here only a safety net so a failed run leaves nothing behind.
      if (prefix) await removeDeployment(podman.docker, prefix);
    } finally {
      await podman?.stop();
    }
  }, 120_000);

  it('creates a template on the docker platform; a bad platform is refused; the old field name still works', async () => {
    const bad = await k!.call('POST', '/api/v1/templates', { name: 'bad-runtime', image: 'x', runtimes: ['nodejs20.x'], platform: 'vm' });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/platform/);
    // `executor` is the deprecated name of `platform`: accepted, and stored under the new name.
    const created = await k!.call('POST', '/api/v1/templates', {
      name: 'node-docker',
      image: 'localhost/kiln/template-nodejs:0.1.0',
      runtimes: ['nodejs20.x'],
      executor: 'docker',
      pool: { minIdle: 0, sandboxesPerExecutor: 4, maxSandboxes: 4 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ name: 'node-docker', platform: 'docker' });
    expect(created.body).not.toHaveProperty('executor');
  });

  it('invokes a function cold, then hot, in a container', async () => {
    const fn = await k!.call('POST', '/api/v1/functions', { name: 'in-docker', runtime: 'nodejs20.x', template: 'node-docker', code: { source: COUNTER } });
    expect(fn.status, JSON.stringify(fn.body)).toBe(201);
    const cold = await k!.call('POST', '/api/v1/functions/in-docker/invocations', { x: 1 });
    expect(cold.status, JSON.stringify(cold.body)).toBe(200);
    expect(cold.body).toMatchObject({ status: 'succeeded', result: { n: 1, got: { x: 1 } } });
    expect(['cold', 'warm']).toContain(cold.body.startType);
    const hot = await k!.call('POST', '/api/v1/functions/in-docker/invocations', { x: 2 });
    expect(hot.body).toMatchObject({ status: 'succeeded', startType: 'hot', result: { n: 2, got: { x: 2 } } });
    // It really ran in a container of this deployment, labelled with the template.
    const running = await containersOf(podman.docker, prefix);
    expect(running.length).toBeGreaterThanOrEqual(1);
    expect(running.every((c) => c.Labels['kiln.template'] === 'node-docker' && c.Labels['kiln.executor'])).toBe(true);
    expect(
      running.every((c) => (c.Ports ?? []).every((p) => !p.PublicPort)),
      'executor containers publish no ports',
    ).toBe(true);
    expect((await k!.call('POST', '/api/v1/functions/nope/invocations', {})).status).toBe(404);
  });

  it('runs a session with files and a process in a container', async () => {
    const created = await k!.call('POST', '/api/v1/sessions', { template: 'node-docker' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    try {
      const put = await fetch(`${k!.url}/api/v1/sessions/${id}/files?path=${encodeURIComponent('app/hello.js')}`, {
        method: 'PUT',
        body: 'require("fs").writeFileSync("out.txt", "written " + require("os").hostname());\nconsole.log("uid", process.getuid());\n',
        headers: { 'content-type': 'application/octet-stream' },
      });
      expect(put.status).toBe(200);
      const ran = await k!.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'node', args: ['app/hello.js'] });
      expect(ran.status, JSON.stringify(ran.body)).toBe(200);
      expect(ran.body).toMatchObject({ exitCode: 0, stdout: 'uid 1000\n' });
      const out = await fetch(`${k!.url}/api/v1/sessions/${id}/files?path=out.txt`);
      expect(await out.text()).toBe('written sandbox');
      // Hostile paths get a clear client error, not a file from the container.
      const escape = await fetch(`${k!.url}/api/v1/sessions/${id}/files?path=${encodeURIComponent('../../etc/passwd')}`);
      expect(escape.status).toBe(400);
    } finally {
      expect((await k!.call('DELETE', `/api/v1/sessions/${id}`)).status).toBeLessThan(300);
    }
  });

  it('copies a file into a container session over NFS through the gateway port', async () => {
    const created = await k!.call('POST', '/api/v1/sessions', { template: 'node-docker' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id as string;
    const dir = mkdtempSync(join(tmpdir(), 'kiln-docker-nfs-'));
    try {
      expect(created.body.nfs.port).toBe(k!.kiln.nfsPort);
      writeFileSync(join(dir, 'in.txt'), 'over nfs into a container\n');
      // Asynchronous: the gateway serves from this very process, so a blocking spawn would hang.
      const exportPath = created.body.nfs.exportPath as string;
      const target = (created.body.nfsUrl as string).replace(`${exportPath}?`, `${exportPath}/in.txt?`);
      expect(target).toContain('/in.txt?');
      const cp = await new Promise<{ code: number; stderr: string }>((resolve) =>
        execFile('nfs-cp', [join(dir, 'in.txt'), target], { timeout: 60_000 }, (err, _out, stderr) => resolve({ code: err ? 1 : 0, stderr })),
      );
      expect(cp.code, cp.stderr).toBe(0);
      const cat = await k!.call('POST', `/api/v1/sessions/${id}/process/run`, { command: 'cat', args: ['in.txt'] });
      expect(cat.body).toMatchObject({ exitCode: 0, stdout: 'over nfs into a container\n' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      expect((await k!.call('DELETE', `/api/v1/sessions/${id}`)).status).toBeLessThan(300);
    }
  });

  it('leaves no container behind once Kiln stops', async () => {
    expect((await k!.call('DELETE', '/api/v1/functions/in-docker')).status).toBeLessThan(300);
    await k!.stop();
    k = undefined;
    expect(await containersOf(podman.docker, prefix)).toEqual([]);
  });
});
