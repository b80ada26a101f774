import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubernetesTestApiServer, PodmanKubelet } from '../support/k8s-test-api-server.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { requirePodman, startPodman, type PodmanService } from '../support/podman.js';

requirePodman();

/**
 * Synced volumes on the kubernetes platform: a control plane whose kubernetes adapter talks to
 * KubernetesTestApiServer, whose pods run for real with `podman kube play` (PodmanKubelet), so
 * the executor is in a pod as on a cluster. The same path as docker's (e2e/volumes-synced.test.ts):
 * a read-write session's writes reach a later session through a sync; one writer at a time; a
 * read-only mount refuses writes.
 */
const NS = 'kiln-volsync';
const TEMPLATE = 'node-k8s';
let podman: PodmanService;
let server: KubernetesTestApiServer;
let k: TestKiln;

beforeAll(async () => {
  podman = await startPodman({ templates: ['nodejs'] });
  server = await KubernetesTestApiServer.start({ kubelet: new PodmanKubelet(podman.containersConf), defaultNamespace: NS });
  k = await startTestKiln({
    templates: { nodejs: null, python: null, shell: null, provided: null },
    env: { KILN_K8S_KUBECONFIG: server.kubeconfigPath, KILN_K8S_NAMESPACE: NS, KILN_K8S_IMAGE_PULL_POLICY: 'Never', KILN_NFS_ENABLED: 'false', KILN_VOLUME_MAX_MB: '4096' },
  });
  const t = await k.call('POST', '/api/v1/templates', {
    name: TEMPLATE,
    image: 'localhost/kiln/template-nodejs:0.1.0',
    runtimes: ['nodejs20.x'],
    platform: 'kubernetes',
    pool: { minIdle: 0, sandboxesPerExecutor: 4, maxSandboxes: 4 },
  });
  expect(t.status, JSON.stringify(t.body)).toBe(201);
}, 600_000);

afterAll(async () => {
  try {
    await k?.stop();
    await server?.close();
  } finally {
    await podman?.stop();
  }
}, 180_000);

const sh = (id: string, line: string) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command: line, shell: true, timeoutMs: 60_000 });
async function session(volumes: unknown[]): Promise<string> {
  const res = await k.call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes, timeoutMs: 600_000 });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}
async function end(id: string): Promise<void> {
  const res = await k.call('DELETE', `/api/v1/sessions/${id}`);
  expect(res.status, JSON.stringify(res.body)).toBe(204);
}

describe('synced volumes on the kubernetes platform (podman kube play)', () => {
  it('carry a session\'s writes to the next through the blob store, one writer at a time, read-only where asked', { timeout: 400_000 }, async () => {
    const name = `kv-${randomBytes(3).toString('hex')}`;
    // Past 1024 MB a synced volume is refused (its archive moves through the control plane's memory); a local one is not.
    const huge = await k.call('POST', '/api/v1/volumes', { name: `${name}-huge`, sizeMB: 2048, mode: 'synced' });
    expect(huge.status).toBe(400);
    expect(huge.body.error.data).toMatchObject({ field: 'sizeMB', maxSizeMB: 1024 });
    expect((await k.call('POST', '/api/v1/volumes', { name, sizeMB: 4, mode: 'synced' })).status).toBe(201);
    const writer = await session([{ name, path: '/mnt/data' }]);
    // In a pod the test API server made, not a local executor.
    expect(server.stored('pods', NS).length).toBeGreaterThan(0);
    expect((await sh(writer, 'echo from-a-pod > /mnt/data/a.txt')).body.exitCode).toBe(0);
    const busy = await k.call('POST', '/api/v1/sessions', { template: TEMPLATE, volumes: [{ name, path: '/mnt/data' }] });
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe('VolumeInUse');
    const synced = await k.call('POST', `/api/v1/sessions/${writer}/volumes/${name}/sync`);
    expect(synced.status, JSON.stringify(synced.body)).toBe(200);
    expect(synced.body.generation).toBe(1);
    const reader = await session([{ name, path: '/mnt/in', readOnly: true }]);
    const r = await sh(reader, 'cat /mnt/in/a.txt; touch /mnt/in/x 2>&1');
    expect(r.body.stdout).toMatch(/^from-a-pod\n.*Read-only file system/s);
    await end(writer);
    await end(reader);
    expect((await k.call('DELETE', `/api/v1/volumes/${name}`)).status).toBe(204);
  });
});
