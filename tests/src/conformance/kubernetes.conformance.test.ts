import { randomBytes } from 'node:crypto';
import { KubernetesPlatform } from '@kiln/control-plane/platforms/kubernetes/kubernetes';
import { KubernetesTestApiServer, PodmanKubelet } from '../support/k8s-test-api-server.js';
import { requirePodman, startPodman } from '../support/podman.js';
import { conformanceTemplate, runtimeConformance } from './platform-conformance.js';

// The kubernetes adapter, unchanged, against KubernetesTestApiServer whose pods run for real
// with `podman kube play` (PodmanKubelet): the generated pod spec is what runs.

const NS = 'kiln-conformance';
requirePodman();

runtimeConformance('kubernetes (podman kube play)', async () => {
  // startPodman builds the images if needed; its API service is not used by kube play.
  const podman = await startPodman({ templates: ['nodejs'] });
  const kubelet = new PodmanKubelet(podman.containersConf);
  const server = await KubernetesTestApiServer.start({ kubelet, defaultNamespace: NS });
  const deployment = `k8sconf${randomBytes(3).toString('hex')}`;
  const make = (opts: { deployment?: string } = {}) =>
    new KubernetesPlatform({
      deployment: opts.deployment ?? deployment,
      kubeconfig: server.kubeconfigPath,
      serviceMode: 'pod-ip',
      imagePullPolicy: 'Never',
      seccompProfile: { type: 'Localhost', localhostProfile: 'kiln/executor-seccomp.json' },
      userNamespaces: true,
      startTimeoutMs: 120_000,
    });
  return {
    template: conformanceTemplate('kubernetes'),
    makePlatform: make,
    async cleanup() {
      try {
        await server.close();
      } finally {
        await podman.stop();
      }
    },
  };
});
