import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'vitest';
import { KubernetesRuntime } from '@kiln/control-plane/runtimes/kubernetes/kubernetes';
import { templateSchema } from '@kiln/control-plane/templates';
import { KubernetesTestApiServer, PodmanKubelet } from '../support/k8s-test-api-server.js';
import { podmanUnavailable, startPodman } from '../support/podman.js';
import { runtimeConformance } from './runtime-conformance.js';

// The kubernetes adapter, unchanged, against KubernetesTestApiServer whose pods run for real
// with `podman kube play` (PodmanKubelet): the generated pod spec is what runs.

const NODEJS_TEMPLATE = fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url));
const NS = 'kiln-conformance';
const unavailable = podmanUnavailable();

if (unavailable) {
  describe('runtime conformance: kubernetes (podman kube play)', () => {
    it.skip(`skipped: ${unavailable}`, () => undefined);
  });
  console.warn(`kubernetes runtime conformance skipped: ${unavailable}`);
} else {
  runtimeConformance('kubernetes (podman kube play)', async () => {
    // startPodman builds the images if needed; its API service is not used by kube play.
    const podman = await startPodman({ templates: ['nodejs'] });
    const kubelet = new PodmanKubelet(podman.containersConf);
    const server = await KubernetesTestApiServer.start({ kubelet, defaultNamespace: NS });
    const deployment = `k8sconf${randomBytes(3).toString('hex')}`;
    const make = (opts: { deployment?: string } = {}) =>
      new KubernetesRuntime({
        deployment: opts.deployment ?? deployment,
        kubeconfig: server.kubeconfigPath,
        serviceMode: 'pod-ip',
        imagePullPolicy: 'Never',
        seccompProfile: { type: 'Localhost', localhostProfile: 'kiln/executor-seccomp.json' },
        userNamespaces: true,
        startTimeoutMs: 120_000,
      });
    const template = templateSchema.parse({ ...JSON.parse(readFileSync(NODEJS_TEMPLATE, 'utf8')), executor: 'kubernetes' });
    template.pool.sandboxesPerExecutor = 4;
    return {
      runtime: make(),
      template,
      makeRuntime: make,
      async cleanup() {
        try {
          await server.close();
        } finally {
          await podman.stop();
        }
      },
    };
  });
}
