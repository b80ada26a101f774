import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubernetesPlatform, type KubernetesPlatformOptions } from '@kiln/control-plane/platforms/kubernetes/kubernetes';
import { objectName } from '@kiln/control-plane/platforms/kubernetes/names';
import { templateSchema, type Template } from '@kiln/control-plane/templates';
import { KubernetesTestApiServer, type RecordedRequest } from '../support/k8s-test-api-server.js';

// The kubernetes adapter's API calls against KubernetesTestApiServer, which validates every
// body against the Kubernetes schemas and records each request. Pod status is driven here, as
// a kubelet would (kubernetes-podman.test.ts runs the same pods for real).

const NS = 'kiln-test';
const template: Template = templateSchema.parse({ ...JSON.parse(readFileSync(fileURLToPath(new URL('../../../templates/nodejs.json', import.meta.url)), 'utf8')), platform: 'kubernetes' });

describe('kubernetes platform against the test API server', () => {
  let server: KubernetesTestApiServer;
  let owner: { uid: string };
  const deployment = `k8s${randomBytes(3).toString('hex')}`;
  const runtimes: KubernetesPlatform[] = [];
  const make = (o: Partial<KubernetesPlatformOptions> = {}) => {
    const r = new KubernetesPlatform({
      deployment,
      kubeconfig: server.kubeconfigPath,
      serviceMode: 'pod-ip',
      imagePullPolicy: 'IfNotPresent',
      seccompProfile: { type: 'Localhost', localhostProfile: 'kiln/executor-seccomp.json' },
      userNamespaces: true,
      owner: { kind: 'Deployment', name: 'kiln-control-plane' },
      startTimeoutMs: 5000,
      ...o,
    });
    runtimes.push(r);
    return r;
  };
  const since = (n: number) => server.requests.slice(n);
  const calls = (rs: RecordedRequest[]) => rs.map((r) => `${r.method} ${r.path}`);
  /** Waits until the adapter has created the pod, then plays kubelet: Running, then Ready. */
  async function becomeReady(name: string, ip: string, node: string): Promise<void> {
    while (!server.get('pods', NS, name)) await new Promise((r) => setTimeout(r, 10));
    server.setPodStatus(NS, name, { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'False' }] }, node);
    await new Promise((r) => setTimeout(r, 50));
    server.setPodStatus(NS, name, { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] }, node);
  }

  beforeAll(async () => {
    server = await KubernetesTestApiServer.start({ defaultNamespace: NS });
    owner = server.seed('deployments', { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'kiln-control-plane', namespace: NS } }).metadata as { uid: string };
  });
  afterAll(async () => {
    for (const r of runtimes) await r.close();
    await server?.close();
  });

  const id = `exe-nodejs-${randomBytes(4).toString('hex')}`;
  const name = objectName(id);

  it('start creates a Secret and a Pod, then watches the pod until Ready', async () => {
    const runtime = make();
    const n = server.requests.length;
    const [handle] = await Promise.all([runtime.start(template, id), becomeReady(name, '10.1.2.3', 'node-a')]);
    expect(handle).toMatchObject({ id, template: 'nodejs', address: '10.1.2.3:7070', host: 'node-a', labels: { deployment, template: 'nodejs', executor: id } });
    const reqs = since(n);
    expect(calls(reqs)).toEqual([`GET /apis/apps/v1/namespaces/${NS}/deployments/kiln-control-plane`, `POST /api/v1/namespaces/${NS}/secrets`, `POST /api/v1/namespaces/${NS}/pods`, `GET /api/v1/namespaces/${NS}/pods`]);
    const [, secretReq, podReq, watchReq] = reqs as [RecordedRequest, RecordedRequest, RecordedRequest, RecordedRequest];
    const secret = secretReq.body as { data: { token: string }; metadata: { name: string } };
    expect(secret.metadata.name).toBe(name);
    expect(Buffer.from(secret.data.token, 'base64').toString()).toBe(handle.token);
    const pod = podReq.body as { metadata: Record<string, unknown>; spec: { containers: Array<{ env: Array<{ name: string; value?: string; valueFrom?: unknown }> }> } };
    expect(pod.metadata).toMatchObject({ name, namespace: NS, labels: { 'kiln.dev/deployment': deployment, 'kiln.dev/executor': id, 'kiln.dev/template': 'nodejs' } });
    expect(pod.metadata.ownerReferences).toEqual([{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'kiln-control-plane', uid: owner.uid, controller: false, blockOwnerDeletion: false }]);
    // The token is a reference to the Secret, never a literal in the pod spec.
    expect(pod.spec.containers[0]?.env.find((e) => e.name === 'KILN_AGENT_TOKEN')).toEqual({ name: 'KILN_AGENT_TOKEN', valueFrom: { secretKeyRef: { name, key: 'token' } } });
    expect(JSON.stringify(pod)).not.toContain(handle.token);
    const created = server.requests.length; // the watch resumes from the created pod's version
    expect(watchReq.query).toMatchObject({ watch: 'true', fieldSelector: `metadata.name=${name}` });
    expect(Number(watchReq.query.resourceVersion)).toBeGreaterThan(0);
    expect(created).toBeGreaterThan(n);
  });

  it('list selects this deployment by label and adopts the token; another deployment sees nothing', async () => {
    const n = server.requests.length;
    const found = await make().list();
    expect(found).toEqual([expect.objectContaining({ id, address: '10.1.2.3:7070', host: 'node-a' })]);
    expect(found[0]?.token).toHaveLength(32);
    const pods = since(n).find((r) => r.path.endsWith('/pods'));
    expect(pods?.query).toEqual({ labelSelector: `kiln.dev/deployment=${deployment}`, fieldSelector: 'status.phase=Running' });
    const other = make({ deployment: 'someone-else' });
    expect(await other.list()).toEqual([]);
    await other.stop(id);
    expect(server.get('pods', NS, name), 'another deployment must not delete this pod').toBeDefined();
  });

  it('stop deletes by label selector; unknown and hostile ids are no-ops', async () => {
    const runtime = make();
    const n = server.requests.length;
    await runtime.stop(`../../etc/passwd`);
    await runtime.stop('exe-nope');
    expect(since(n).filter((r) => r.method === 'DELETE')).toEqual([]);
    await runtime.stop(id);
    const deletes = calls(since(n).filter((r) => r.method === 'DELETE'));
    expect(deletes).toEqual([`DELETE /api/v1/namespaces/${NS}/pods/${name}`, `DELETE /api/v1/namespaces/${NS}/secrets/${name}`]);
    const selectors = since(n).filter((r) => r.method === 'GET' && r.path.endsWith('/pods')).map((r) => r.query.labelSelector);
    // A hostile id becomes a valid (hashed) label value: the API accepts the selector, which matches nothing.
    expect(selectors.slice(0, 2)).toEqual([expect.stringMatching(new RegExp(`^kiln.dev/deployment=${deployment},kiln.dev/executor=etc-passwd-[0-9a-f]{10}$`)), `kiln.dev/deployment=${deployment},kiln.dev/executor=exe-nope`]);
    expect(await runtime.list()).toEqual([]);
    await runtime.stop(id);
  });

  it('a 404 on delete (the pod went away meanwhile) is tolerated', async () => {
    const runtime = make();
    const id2 = `exe-nodejs-${randomBytes(4).toString('hex')}`;
    await Promise.all([runtime.start(template, id2), becomeReady(objectName(id2), '10.1.2.4', 'node-b')]);
    server.injectStatus('DELETE', `/api/v1/namespaces/${NS}/pods/${objectName(id2)}`, 404, 'NotFound');
    await runtime.stop(id2);
    expect(server.get('secrets', NS, objectName(id2))).toBeUndefined();
  });

  it('a pod that never becomes ready fails start with its name, last status and events, and is removed', async () => {
    const runtime = make({ startTimeoutMs: 1500 });
    const id3 = `exe-nodejs-${randomBytes(4).toString('hex')}`;
    const pod = objectName(id3);
    const started = runtime.start(template, id3);
    started.catch(() => undefined); // awaited below; this only keeps the rejection from looking unhandled meanwhile
    while (!server.get('pods', NS, pod)) await new Promise((r) => setTimeout(r, 10));
    server.addEvent(NS, pod, 'FailedScheduling', '0/3 nodes are available: 3 Insufficient memory.');
    const err = (await started.then(() => undefined, (e: Error) => e)) as Error & { code?: string };
    expect(err?.message).toMatch(new RegExp(`executor ${id3} \\(pod ${pod}\\) did not start: not ready within 1500 ms \\(KILN_K8S_START_TIMEOUT_MS\\)`));
    expect(err.message).toContain('last status: phase=Pending');
    expect(err.message).toContain('FailedScheduling: 0/3 nodes are available');
    expect(err.code).toBe('ExecutorStartFailed');
    expect(server.get('pods', NS, pod)).toBeUndefined();
    expect(server.get('secrets', NS, pod)).toBeUndefined();
  });

  it('an image that cannot be pulled fails at once, not at the timeout', async () => {
    const runtime = make({ startTimeoutMs: 60_000 });
    const id4 = `exe-nodejs-${randomBytes(4).toString('hex')}`;
    const pod = objectName(id4);
    const started = runtime.start(template, id4);
    started.catch(() => undefined); // awaited below; this only keeps the rejection from looking unhandled meanwhile
    while (!server.get('pods', NS, pod)) await new Promise((r) => setTimeout(r, 10));
    server.setPodStatus(NS, pod, { phase: 'Pending', containerStatuses: [{ name: 'executor', ready: false, restartCount: 0, image: template.image, imageID: '', state: { waiting: { reason: 'ErrImagePull', message: 'pull access denied' } } }] });
    await expect(started).rejects.toThrow(/container executor: ErrImagePull: pull access denied/);
  });

  it('service mode creates a ClusterIP Service selecting the pod and answers with its DNS name', async () => {
    const runtime = make({ serviceMode: 'service', owner: { kind: 'Deployment', name: 'kiln-control-plane', uid: '11111111-2222-3333-4444-555555555555' } });
    const id5 = `exe-nodejs-${randomBytes(4).toString('hex')}`;
    const n = server.requests.length;
    const [handle] = await Promise.all([runtime.start(template, id5), becomeReady(objectName(id5), '10.1.2.5', 'node-c')]);
    expect(handle.address).toBe(`${objectName(id5)}.${NS}.svc:7070`);
    const svc = since(n).find((r) => r.method === 'POST' && r.path.endsWith('/services'))?.body as { spec: unknown; metadata: { ownerReferences: Array<{ uid: string }> } };
    expect(svc.spec).toMatchObject({ type: 'ClusterIP', selector: { 'kiln.dev/deployment': deployment, 'kiln.dev/executor': id5 }, ports: [{ port: 7070, targetPort: 7070 }] });
    // An owner with a uid is used as is: no GET of the Deployment.
    expect(svc.metadata.ownerReferences[0]?.uid).toBe('11111111-2222-3333-4444-555555555555');
    expect(calls(since(n))).not.toContain(`GET /apis/apps/v1/namespaces/${NS}/deployments/kiln-control-plane`);
    await runtime.stop(id5);
    expect(server.get('services', NS, objectName(id5))).toBeUndefined();
  });

  it('a missing owner is a clear error naming KILN_K8S_OWNER', async () => {
    const runtime = make({ owner: { kind: 'Deployment', name: 'no-such-deployment' } });
    await expect(runtime.start(template, `exe-nodejs-${randomBytes(4).toString('hex')}`)).rejects.toThrow(/cannot read the owner Deployment\/no-such-deployment in namespace kiln-test \(KILN_K8S_OWNER\)/);
  });

  describe('the test server itself rejects what a real API server would', () => {
    const call = (method: string, path: string, body?: unknown, auth = true) => server.call(method, path, body, auth);
    it('malformed selectors, unknown paths, bad names and missing credentials', async () => {
      expect((await call('GET', `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent('a=b,,c')}`)).body).toMatchObject({ kind: 'Status', reason: 'BadRequest' });
      expect((await call('GET', `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent('kiln.dev/x=../..')}`)).status).toBe(400);
      expect((await call('GET', `/api/v1/namespaces/${NS}/pods?fieldSelector=spec.secret=x`)).body.message).toMatch(/field label not supported/);
      expect((await call('GET', `/api/v1/namespaces/${NS}/pods?labelSelector=${encodeURIComponent('a in (x,y),!b,c!=d')}`)).status).toBe(200);
      expect((await call('GET', `/api/v1/namespaces/Bad_NS/pods`)).status).toBe(400);
      expect((await call('GET', `/api/v1/namespaces/${NS}/configmaps`)).status).toBe(404);
      expect((await call('GET', `/api/v1/namespaces/${NS}/pods`, undefined, false)).status).toBe(401);
      expect((await call('DELETE', `/api/v1/namespaces/${NS}/pods/nope`)).body).toMatchObject({ reason: 'NotFound' });
    });
    it('bodies that fail the Kubernetes schema are 422 Invalid', async () => {
      const bad = await call('POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1' }, spec: { containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 'seventy' }] }] } });
      expect(bad).toMatchObject({ status: 422, body: { reason: 'Invalid' } });
      expect((await call('POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'UPPER' }, spec: { containers: [] } })).status).toBe(422);
      expect((await call('POST', `/api/v1/namespaces/${NS}/pods`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p2', namespace: 'elsewhere' }, spec: { containers: [{ name: 'c', image: 'x' }] } })).status).toBe(400);
      expect((await call('POST', `/api/v1/namespaces/${NS}/secrets`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 's' } })).status).toBe(400);
    });
  });
});
