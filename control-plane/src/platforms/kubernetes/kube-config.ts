import { AppsV1Api, CoreV1Api, KubeConfig, type V1ObjectMeta, type V1OwnerReference } from '@kubernetes/client-node';
import { KilnError } from '../../errors.js';

/**
 * The API credentials: a kubeconfig file when KILN_K8S_KUBECONFIG names one; the pod's
 * service account when running in a cluster (KUBERNETES_SERVICE_HOST is set by the kubelet);
 * otherwise the usual defaults (KUBECONFIG, then ~/.kube/config).
 */
export function loadKubeConfig(kubeconfig: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (kubeconfig) kc.loadFromFile(kubeconfig);
    else if (env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new KilnError('RuntimeUnavailable', 503, `cannot load Kubernetes credentials${kubeconfig ? ` from ${kubeconfig} (KILN_K8S_KUBECONFIG)` : ''}: ${(err as Error).message}`, {}, true);
  }
  if (!kc.getCurrentCluster()) {
    throw new KilnError('RuntimeUnavailable', 503, 'no Kubernetes cluster configured: set KILN_K8S_KUBECONFIG to a kubeconfig file, or run the control plane in a pod', {}, true);
  }
  return kc;
}

/** The namespace executors go to: KILN_K8S_NAMESPACE, else the kubeconfig context's, else `default`. */
export function defaultNamespace(kc: KubeConfig, configured: string | undefined): string {
  if (configured) return configured;
  const context = kc.getContextObject(kc.getCurrentContext());
  return context?.namespace ?? 'default';
}

/** KILN_K8S_OWNER: `<Kind>/<name>` or `<Kind>/<name>/<uid>`. */
export interface OwnerSpec {
  kind: 'Deployment' | 'StatefulSet' | 'Pod' | 'ConfigMap';
  name: string;
  uid?: string;
}

const API_VERSIONS: Record<OwnerSpec['kind'], string> = { Deployment: 'apps/v1', StatefulSet: 'apps/v1', Pod: 'v1', ConfigMap: 'v1' };

/**
 * The owner reference every executor object carries, so deleting the owner (normally the
 * control plane's Deployment, in the executors' namespace: owner references never cross
 * namespaces) garbage-collects them. Without a uid the owner is read once from the API, which
 * needs `get` on that one object (infra/kubernetes/rbac.yaml grants it).
 */
export async function resolveOwner(kc: KubeConfig, namespace: string, spec: OwnerSpec): Promise<V1OwnerReference> {
  const apiVersion = API_VERSIONS[spec.kind];
  if (spec.uid) return { apiVersion, kind: spec.kind, name: spec.name, uid: spec.uid };
  let meta: V1ObjectMeta | undefined;
  try {
    const request = { name: spec.name, namespace };
    if (spec.kind === 'Deployment') meta = (await kc.makeApiClient(AppsV1Api).readNamespacedDeployment(request)).metadata;
    else if (spec.kind === 'StatefulSet') meta = (await kc.makeApiClient(AppsV1Api).readNamespacedStatefulSet(request)).metadata;
    else if (spec.kind === 'Pod') meta = (await kc.makeApiClient(CoreV1Api).readNamespacedPod(request)).metadata;
    else meta = (await kc.makeApiClient(CoreV1Api).readNamespacedConfigMap(request)).metadata;
  } catch (err) {
    throw new KilnError('RuntimeUnavailable', 503, `cannot read the owner ${spec.kind}/${spec.name} in namespace ${namespace} (KILN_K8S_OWNER): ${(err as Error).message}`, {}, true);
  }
  if (!meta?.uid) throw new KilnError('RuntimeUnavailable', 503, `the owner ${spec.kind}/${spec.name} (KILN_K8S_OWNER) has no uid`, {}, true);
  return { apiVersion, kind: spec.kind, name: spec.name, uid: meta.uid };
}

/** The HTTP status of a client-node ApiException (undefined for other errors). */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}
