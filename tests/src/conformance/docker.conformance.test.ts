import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'vitest';
import { DockerRuntime } from '@kiln/control-plane/runtimes/docker';
import { templateSchema } from '@kiln/control-plane/templates';
import { podmanUnavailable, removeDeployment, startPodman } from '../support/podman.js';
import { runtimeConformance } from './runtime-conformance.js';

const NODEJS_TEMPLATE = fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url));
const SECCOMP = fileURLToPath(new URL('../../../infra/podman/seccomp.json', import.meta.url));
const unavailable = podmanUnavailable();

if (unavailable) {
  describe('runtime conformance: docker (podman)', () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
  console.warn(`docker runtime conformance skipped: ${unavailable}`);
} else {
  runtimeConformance('docker (podman)', async () => {
    const podman = await startPodman({ templates: ['nodejs'] });
    const deployment = `conf${randomBytes(4).toString('hex')}`;
    const others: string[] = [];
    const make = (opts: { deployment?: string } = {}) => {
      if (opts.deployment) others.push(opts.deployment);
      return new DockerRuntime({ deployment: opts.deployment ?? deployment, host: podman.host, seccompProfile: SECCOMP });
    };
    const template = templateSchema.parse({ ...JSON.parse(readFileSync(NODEJS_TEMPLATE, 'utf8')), executor: 'docker' });
    // Small limits: the conformance executor hosts a couple of sandboxes at most.
    template.pool.sandboxesPerExecutor = 4;
    return {
      runtime: make(),
      template,
      makeRuntime: make,
      async cleanup() {
        try {
          for (const d of [deployment, ...others]) await removeDeployment(podman.docker, d);
        } finally {
          await podman.stop();
        }
      },
    };
  });
}
