import { networkInterfaces } from 'node:os';
import type { V1SeccompProfile } from '@kubernetes/client-node';
import type { Config } from '../../config.js';
import type { OwnerSpec } from './kube-config.js';
import type { KubernetesPlatformOptions } from './kubernetes.js';

/** KILN_K8S_SECCOMP_PROFILE (`Localhost:<path>`, `RuntimeDefault`, `Unconfined`) → the pod field. */
export function seccompProfile(value: string): V1SeccompProfile {
  if (value.startsWith('Localhost:')) return { type: 'Localhost', localhostProfile: value.slice('Localhost:'.length) };
  return { type: value };
}

/** KILN_K8S_OWNER (`<Kind>/<name>[/<uid>]`, already validated by config.ts) → its parts. */
export function ownerSpec(value: string): OwnerSpec {
  const [kind, name, uid] = value.split('/') as [OwnerSpec['kind'], string, string | undefined];
  return { kind, name, ...(uid ? { uid } : {}) };
}

/**
 * Addresses the NFS gateway's upstream connections come from when nothing is configured: this
 * control plane's own non-loopback addresses, which is what executors see in pod-IP mode.
 */
export function ownAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a !== undefined && !a.internal)
    .map((a) => a!.address);
}

/** The adapter's options from the validated configuration (the deployment is the Redis prefix). */
export function kubernetesPlatformOptions(config: Config): KubernetesPlatformOptions {
  const k = config.kubernetes;
  return {
    deployment: config.prefix,
    ...(k.namespace ? { namespace: k.namespace } : {}),
    ...(k.kubeconfig ? { kubeconfig: k.kubeconfig } : {}),
    serviceMode: k.serviceMode,
    imagePullPolicy: k.imagePullPolicy,
    seccompProfile: seccompProfile(k.seccompProfile),
    userNamespaces: k.userNamespaces,
    ...(k.owner ? { owner: ownerSpec(k.owner) } : {}),
    ...(k.serviceAccount ? { serviceAccountName: k.serviceAccount } : {}),
    startTimeoutMs: k.startTimeoutMs,
    ...(config.nfs ? { nfs: { trustedProxies: k.nfsTrustedProxies ?? ownAddresses() } } : {}),
  };
}
