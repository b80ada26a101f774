import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerPlatform } from '@kiln/control-plane/platforms/docker';
import { templateSchema } from '@kiln/control-plane/templates';
import { containersOf, removeDeployment, requirePodman, startPodman, type PodmanService } from '../support/podman.js';

const SECCOMP = fileURLToPath(new URL('../../../infra/podman/seccomp.json', import.meta.url));
const base = JSON.parse(readFileSync(fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url)), 'utf8'));
requirePodman();

describe('docker platform: failures say what to change', () => {
  it('an unreachable engine names KILN_DOCKER_HOST', async () => {
    const runtime = new DockerPlatform({ deployment: 'x', host: 'unix:///nonexistent/podman.sock', seccompProfile: SECCOMP });
    await expect(runtime.list()).rejects.toThrow(/cannot reach the container engine at unix:\/\/\/nonexistent\/podman.sock \(KILN_DOCKER_HOST/);
  });

  it('a bad engine address is refused up front', () => {
    expect(() => new DockerPlatform({ deployment: 'x', host: 'ftp://h', seccompProfile: SECCOMP })).toThrow(/KILN_DOCKER_HOST must be/);
  });

  describe('against podman', () => {
    let podman: PodmanService;
    const deployment = `err${randomBytes(4).toString('hex')}`;
    beforeAll(async () => {
      podman = await startPodman({ templates: ['nodejs'] });
    }, 600_000);
    afterAll(async () => {
      try {
        await removeDeployment(podman.docker, deployment);
      } finally {
        await podman?.stop();
      }
    });

    it('a missing image is a clear error and leaves no container', async () => {
      const runtime = new DockerPlatform({ deployment, host: podman.host, seccompProfile: SECCOMP });
      const template = templateSchema.parse({ ...base, image: 'localhost/kiln/does-not-exist:0' });
      await expect(runtime.start(template, 'ex-missing')).rejects.toThrow(/image localhost\/kiln\/does-not-exist:0 is not on the engine.*images\/build\.sh/);
      expect(await containersOf(podman.docker, deployment)).toEqual([]);
    });

    it('an executor that exits at boot is removed, with its last log lines in the error', async () => {
      const runtime = new DockerPlatform({ deployment, host: podman.host, seccompProfile: SECCOMP, startTimeoutMs: 30_000 });
      // The executor accepts at most 4096 sandboxes (executor/src/config.ts) and exits on more.
      // Templates cannot say more (the schema's bound), so the value is set past validation here.
      const template = templateSchema.parse({
        ...base,
        resources: { ...base.resources, memoryMB: 32, diskMB: 16, maxProcesses: 8 },
      });
      template.pool.sandboxesPerExecutor = 5000;
      const err = await runtime.start(template, 'ex-exits').then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).toMatch(/executor ex-exits did not start: the container exited with code \d+/);
      expect(err?.message).toMatch(/last container log lines[\s\S]*KILN_MAX_SANDBOXES/);
      expect(await containersOf(podman.docker, deployment)).toEqual([]);
    });
  });
});
