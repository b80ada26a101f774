import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { DockerPlatform } from '@kiln/control-plane/platforms/docker';
import { removeDeployment, requirePodman, startPodman } from '../support/podman.js';
import { conformanceTemplate, runtimeConformance } from './platform-conformance.js';

const SECCOMP = fileURLToPath(new URL('../../../infra/podman/seccomp.json', import.meta.url));
requirePodman();

runtimeConformance('docker (podman)', async () => {
  const podman = await startPodman({ templates: ['nodejs'] });
  const deployment = `conf${randomBytes(4).toString('hex')}`;
  const others: string[] = [];
  const make = (opts: { deployment?: string } = {}) => {
    if (opts.deployment) others.push(opts.deployment);
    return new DockerPlatform({ deployment: opts.deployment ?? deployment, host: podman.host, seccompProfile: SECCOMP });
  };
  return {
    template: conformanceTemplate('docker'),
    makePlatform: make,
    async cleanup() {
      try {
        for (const d of [deployment, ...others]) await removeDeployment(podman.docker, d);
      } finally {
        await podman.stop();
      }
    },
  };
});
