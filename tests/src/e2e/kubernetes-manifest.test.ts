import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Pod, Secret, Service } from 'kubernetes-models/v1';
import { executorPod, executorSecret, executorService, type ExecutorPodOptions } from '@kiln/control-plane/platforms/kubernetes/manifest';
import { labelValue, objectName } from '@kiln/control-plane/platforms/kubernetes/names';
import { templateSchema, type Template } from '@kiln/control-plane/templates';

// The manifests the kubernetes adapter sends, checked against the Kubernetes OpenAPI schemas
// (kubernetes-models) for every template shipped in templates/.

const DIR = fileURLToPath(new URL('../../../templates/', import.meta.url));
const templates: Template[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => templateSchema.parse(JSON.parse(readFileSync(DIR + f, 'utf8'))));
const opts: ExecutorPodOptions = {
  namespace: 'kiln',
  deployment: 'kiln:prod',
  imagePullPolicy: 'IfNotPresent',
  seccompProfile: { type: 'Localhost', localhostProfile: 'kiln/executor-seccomp.json' },
  userNamespaces: true,
  owner: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'kiln-control-plane', uid: '0f6b2c4e-1a2b-4c3d-8e9f-001122334455' },
};

/** The JSON the adapter puts on the wire (client-node types use Date where the API has strings). */
const wire = (obj: unknown) => JSON.parse(JSON.stringify(obj)) as never;

describe('kubernetes executor manifests', () => {
  it.each(templates.map((t) => [t.name, t] as const))('%s: pod, secret and service validate against the schemas', (_name, template) => {
    const id = `exe-${template.name}-1a2b3c4d`;
    expect(() => new Pod(wire(executorPod(template, id, opts))).validate()).not.toThrow();
    expect(() => new Secret(wire(executorSecret(template, id, 'tok', opts))).validate()).not.toThrow();
    expect(() => new Service(wire(executorService(template, id, opts))).validate()).not.toThrow();
  });

  it('the schema check is real: a broken pod fails it', () => {
    const pod = executorPod(templates[0] as Template, 'exe-x', opts) as unknown as { spec: { containers: Array<{ ports: unknown }> } };
    (pod.spec.containers[0] as { ports: unknown }).ports = [{ containerPort: 'seven' }];
    expect(() => new Pod(pod as never).validate()).toThrow();
  });

  it('security context: non-root, no capabilities, no escalation, read-only root, unmasked /proc with user namespaces, Kiln seccomp', () => {
    const pod = executorPod(templates[0] as Template, 'exe-a', opts);
    const spec = pod.spec!;
    const c = spec.containers[0]!;
    expect(spec.hostUsers).toBe(false);
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: { type: 'Localhost', localhostProfile: 'kiln/executor-seccomp.json' } });
    expect(c.securityContext).toEqual({ runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true, procMount: 'Unmasked' });
    expect(spec).toMatchObject({ restartPolicy: 'Never', automountServiceAccountToken: false, enableServiceLinks: false, terminationGracePeriodSeconds: 10 });
    expect(c.readinessProbe?.grpc).toEqual({ port: 7070 });
    expect(c.livenessProbe?.grpc).toEqual({ port: 7070 });
    const off = executorPod(templates[0] as Template, 'exe-a', { ...opts, userNamespaces: false }).spec!;
    expect(off.hostUsers).toBeUndefined();
    expect(off.containers[0]?.securityContext?.procMount).toBeUndefined();
  });

  it('NFS: on, the executor listens on 2049 and believes PROXY lines only from the gateway; off, it serves none', () => {
    const t = templates[0] as Template;
    const on = executorPod(t, 'exe-n', { ...opts, nfs: { trustedProxies: ['10.1.2.3', '10.8.0.0/16'] } });
    expect(() => new Pod(wire(on)).validate()).not.toThrow();
    const c = on.spec!.containers[0]!;
    expect(c.env).toEqual(expect.arrayContaining([{ name: 'KILN_NFS_LISTEN', value: '0.0.0.0:2049' }, { name: 'KILN_NFS_TRUSTED_PROXIES', value: '10.1.2.3,10.8.0.0/16' }]));
    expect(c.ports).toContainEqual({ name: 'nfs', containerPort: 2049, protocol: 'TCP' });
    const svc = executorService(t, 'exe-n', { ...opts, nfs: { trustedProxies: [] } });
    expect(() => new Service(wire(svc)).validate()).not.toThrow();
    expect(svc.spec?.ports?.map((p) => p.port)).toEqual([7070, 2049]);
    const off = executorPod(t, 'exe-n', opts).spec!.containers[0]!;
    expect(off.env).toContainEqual({ name: 'KILN_NFS_LISTEN', value: 'off' });
    expect(off.ports?.map((p) => p.containerPort)).toEqual([7070]);
  });

  it('resources: requests for one sandbox, limits for a full executor, /tmp sized for all of them', () => {
    const t = templateSchema.parse({ name: 'r', image: 'x', runtimes: ['nodejs20.x'], resources: { cpu: 0.5, memoryMB: 128, diskMB: 64 }, pool: { sandboxesPerExecutor: 4 } });
    const c = executorPod(t, 'exe-r', opts).spec!.containers[0]!;
    expect(c.resources).toEqual({ requests: { cpu: '500m', memory: '384Mi' }, limits: { cpu: '2000m', memory: '768Mi', 'ephemeral-storage': '256Mi' } });
    expect(executorPod(t, 'exe-r', opts).spec!.volumes).toEqual([{ name: 'data', emptyDir: { sizeLimit: '256Mi' } }]);
  });

  it('owner references, labels and names stay valid for long ids and prefixes with ":"', () => {
    const long = `exe-${'a'.repeat(63)}-12345678`;
    const pod = executorPod(templates[0] as Template, long, opts);
    expect(pod.metadata?.ownerReferences).toEqual([{ ...opts.owner, controller: false, blockOwnerDeletion: false }]);
    expect(pod.metadata?.name).toBe(objectName(long));
    expect(pod.metadata?.name?.length).toBeLessThanOrEqual(63);
    expect(pod.metadata?.labels?.['kiln.dev/deployment']).toBe('kiln-prod-' + labelValue('kiln:prod').slice(-10));
    expect(pod.metadata?.annotations).toMatchObject({ 'kiln.dev/executor-id': long, 'kiln.dev/deployment': 'kiln:prod' });
    expect(() => new Pod(wire(pod)).validate()).not.toThrow();
    expect(labelValue('../../etc/passwd')).toMatch(/^etc-passwd-[0-9a-f]{10}$/);
  });
});
