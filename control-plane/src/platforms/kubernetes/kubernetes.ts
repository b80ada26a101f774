import { randomBytes } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type V1OwnerReference, type V1Pod, type V1SeccompProfile } from '@kubernetes/client-node';
import type { Template } from '../../templates/template.js';
import type { ExecutorHandle, Platform } from '../platform.js';
import { apiStatus, defaultNamespace, loadKubeConfig, resolveOwner, type OwnerSpec } from './kube-config.js';
import { executorPod, executorSecret, executorService, type ExecutorPodOptions } from './manifest.js';
import { AGENT_PORT, ANNOTATIONS, executorSelector, NFS_PORT, objectName, TOKEN_KEY } from './names.js';
import { waitForPodReady } from './readiness.js';

/** How the control plane reaches an agent: the pod's IP, or a per-executor ClusterIP Service. */
export type ServiceMode = 'pod-ip' | 'service';

export interface KubernetesPlatformOptions {
  /** Deployment name (KILN_REDIS_PREFIX), the `kiln.dev/deployment` label. */
  deployment: string;
  /** KILN_K8S_NAMESPACE; default the kubeconfig context's namespace, else `default`. */
  namespace?: string;
  /** KILN_K8S_KUBECONFIG; default in-cluster credentials, else KUBECONFIG / ~/.kube/config. */
  kubeconfig?: string;
  serviceMode: ServiceMode;
  imagePullPolicy: ExecutorPodOptions['imagePullPolicy'];
  seccompProfile: V1SeccompProfile;
  userNamespaces: boolean;
  /** KILN_K8S_OWNER: the object whose deletion garbage-collects executors. */
  owner?: OwnerSpec;
  serviceAccountName?: string;
  startTimeoutMs: number;
  /** Executors serve NFS on port 2049 (KILN_NFS_ENABLED); see {@link ExecutorPodOptions.nfs}. */
  nfs?: { trustedProxies: string[] };
}

/**
 * Executors as pods, through @kubernetes/client-node. All state lives in the API (labels, and
 * the token in a per-executor Secret), so a restarted control plane lists and adopts what an
 * earlier one started. Objects are always found by the deployment's label selector, never by
 * name alone, so another deployment sharing the namespace is never touched.
 */
export class KubernetesPlatform implements Platform {
  readonly kind = 'kubernetes';
  private readonly kc: KubeConfig;
  private readonly core: CoreV1Api;
  readonly namespace: string;
  private owner: Promise<V1OwnerReference | undefined> | undefined;

  constructor(private readonly opts: KubernetesPlatformOptions) {
    this.kc = loadKubeConfig(opts.kubeconfig);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.namespace = defaultNamespace(this.kc, opts.namespace);
  }

  async start(template: Template, executorId: string): Promise<ExecutorHandle> {
    const podOptions = await this.podOptions();
    const token = randomBytes(24).toString('base64url');
    const namespace = this.namespace;
    const name = objectName(executorId);
    await this.core.createNamespacedSecret({ namespace, body: executorSecret(template, executorId, token, podOptions) });
    try {
      const created = await this.core.createNamespacedPod({ namespace, body: executorPod(template, executorId, podOptions) });
      if (this.opts.serviceMode === 'service') await this.core.createNamespacedService({ namespace, body: executorService(template, executorId, podOptions) });
      const pod = await waitForPodReady({ kc: this.kc, core: this.core, namespace, pod: name, executorId, resourceVersion: created.metadata?.resourceVersion, timeoutMs: this.opts.startTimeoutMs });
      return this.handle(pod, token) as ExecutorHandle;
    } catch (err) {
      // A half-started executor is removed, never left for the keeper to trip over.
      await this.stop(executorId).catch((e: Error) => {
        throw new Error(`${(err as Error).message}; removing its pod, secret or service failed too: ${e.message}`);
      });
      throw err;
    }
  }

  async stop(executorId: string): Promise<void> {
    const namespace = this.namespace;
    const labelSelector = executorSelector(this.opts.deployment, executorId);
    const gone = (err: unknown) => {
      // 404: already deleted (by us earlier, or by garbage collection); anything else surfaces.
      if (apiStatus(err) !== 404) throw err;
    };
    // Listed by the deployment's and the executor's labels: a made-up id, or another
    // deployment's executor with the same id in this namespace, selects nothing.
    const pods = await this.core.listNamespacedPod({ namespace, labelSelector });
    for (const p of pods.items) await this.core.deleteNamespacedPod({ name: p.metadata?.name as string, namespace, gracePeriodSeconds: 5 }).catch(gone);
    if (this.opts.serviceMode === 'service') {
      const services = await this.core.listNamespacedService({ namespace, labelSelector });
      for (const s of services.items) await this.core.deleteNamespacedService({ name: s.metadata?.name as string, namespace }).catch(gone);
    }
    const secrets = await this.core.listNamespacedSecret({ namespace, labelSelector });
    for (const s of secrets.items) await this.core.deleteNamespacedSecret({ name: s.metadata?.name as string, namespace }).catch(gone);
  }

  async list(): Promise<ExecutorHandle[]> {
    const namespace = this.namespace;
    const labelSelector = executorSelector(this.opts.deployment);
    const [pods, secrets] = await Promise.all([
      this.core.listNamespacedPod({ namespace, labelSelector, fieldSelector: 'status.phase=Running' }),
      this.core.listNamespacedSecret({ namespace, labelSelector }),
    ]);
    const tokens = new Map<string, string>();
    for (const s of secrets.items) {
      const id = s.metadata?.annotations?.[ANNOTATIONS.executorId];
      const data = s.data?.[TOKEN_KEY];
      if (id && data) tokens.set(id, Buffer.from(data, 'base64').toString('utf8'));
    }
    const out: ExecutorHandle[] = [];
    for (const pod of pods.items) {
      const id = pod.metadata?.annotations?.[ANNOTATIONS.executorId];
      const token = id ? tokens.get(id) : undefined;
      const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      // Only ready pods: one still starting belongs to the start() that is waiting for it.
      if (!token || !ready || pod.metadata?.deletionTimestamp) continue;
      const handle = this.handle(pod, token);
      if (handle) out.push(handle);
    }
    return out;
  }

  async close(): Promise<void> {
    // client-node opens a connection per request (and start()'s watches end with it).
  }

  private podOptions(): Promise<ExecutorPodOptions> {
    const spec = this.opts.owner;
    this.owner ??= spec
      ? resolveOwner(this.kc, this.namespace, spec).catch((err: Error) => {
          // The next start() tries again; this one fails with the message naming KILN_K8S_OWNER.
          this.owner = undefined;
          throw err;
        })
      : Promise.resolve(undefined);
    return this.owner.then((owner) => ({
      namespace: this.namespace,
      deployment: this.opts.deployment,
      imagePullPolicy: this.opts.imagePullPolicy,
      seccompProfile: this.opts.seccompProfile,
      userNamespaces: this.opts.userNamespaces,
      ...(owner ? { owner } : {}),
      ...(this.opts.serviceAccountName ? { serviceAccountName: this.opts.serviceAccountName } : {}),
      ...(this.opts.nfs ? { nfs: this.opts.nfs } : {}),
    }));
  }

  /** The handle of a ready pod, rebuilt from the API's record alone (plus its token). */
  private handle(pod: V1Pod, token: string): ExecutorHandle | undefined {
    const annotations = pod.metadata?.annotations ?? {};
    const id = annotations[ANNOTATIONS.executorId];
    const ip = pod.status?.podIP;
    if (!id || !ip) return undefined;
    const template = annotations[ANNOTATIONS.template] ?? '';
    const deployment = annotations[ANNOTATIONS.deployment] ?? this.opts.deployment;
    const host = this.opts.serviceMode === 'service' ? `${objectName(id)}.${this.namespace}.svc` : ip.includes(':') ? `[${ip}]` : ip;
    // Read back from the pod spec, so adopted executors report NFS exactly as they were started.
    const nfsListen = pod.spec?.containers[0]?.env?.find((e) => e.name === 'KILN_NFS_LISTEN')?.value;
    const nfs = nfsListen && nfsListen !== 'off' ? { nfsHost: host, nfsPort: NFS_PORT } : {};
    return {
      id,
      template,
      address: `${host}:${AGENT_PORT}`,
      token,
      // The node, for image-locality preferences; a pod that is ready is always scheduled.
      host: pod.spec?.nodeName ?? 'unscheduled',
      labels: { deployment, template, executor: id },
      ...nfs,
    };
  }
}
