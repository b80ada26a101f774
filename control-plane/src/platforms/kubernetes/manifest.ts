import type { V1OwnerReference, V1Pod, V1Probe, V1Secret, V1SeccompProfile, V1Service } from '@kubernetes/client-node';
import type { Template } from '../../templates/template.js';
import { templateRunners } from '../../templates/template.js';
import { AGENT_PORT, NFS_PORT, executorAnnotations, executorLabels, LABELS, labelValue, objectName, TOKEN_KEY } from './names.js';

/** Memory the executor process itself needs beside its sandboxes (as for containers). */
const EXECUTOR_OVERHEAD_MB = 256;

/** What every executor pod of one deployment shares; comes from KILN_K8S_* (config.ts). */
export interface ExecutorPodOptions {
  namespace: string;
  /** Deployment name (KILN_REDIS_PREFIX), the `kiln.dev/deployment` label. */
  deployment: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** seccomp profile bubblewrap can work under (see {@link executorPod}). */
  seccompProfile: V1SeccompProfile;
  /**
   * `hostUsers: false` + `procMount: Unmasked`. Needs Kubernetes 1.33+ (or the
   * UserNamespacesSupport and ProcMountType feature gates); without it bwrap cannot mount the
   * sandbox's /proc and every sandbox fails to boot.
   */
  userNamespaces: boolean;
  /** The object whose deletion garbage-collects the executors (the control plane's Deployment). */
  owner?: V1OwnerReference;
  /** Service account of executor pods; none means `default` with no token mounted. */
  serviceAccountName?: string;
  /**
   * NFS export of session workspaces on port 2049; absent turns the executor's NFS server off.
   * `trustedProxies` are the addresses whose PROXY lines the executor believes: the control
   * plane's NFS gateway, so per-session allow-lists see the real client address.
   */
  nfs?: { trustedProxies: string[] };
}

/** The executor's NFS settings as env; read back by the adapter when it adopts a pod. */
function nfsEnv(opts: ExecutorPodOptions): { name: string; value: string }[] {
  if (!opts.nfs) return [{ name: 'KILN_NFS_LISTEN', value: 'off' }];
  return [
    { name: 'KILN_NFS_LISTEN', value: `0.0.0.0:${NFS_PORT}` },
    { name: 'KILN_NFS_TRUSTED_PROXIES', value: opts.nfs.trustedProxies.join(',') },
  ];
}

function metadata(template: Template, executorId: string, opts: ExecutorPodOptions) {
  return {
    name: objectName(executorId),
    namespace: opts.namespace,
    labels: executorLabels(opts.deployment, template.name, executorId),
    annotations: executorAnnotations(opts.deployment, template.name, executorId),
    ...(opts.owner ? { ownerReferences: [{ ...opts.owner, controller: false, blockOwnerDeletion: false }] } : {}),
  };
}

function grpcProbe(periodSeconds: number, failureThreshold: number): V1Probe {
  return { grpc: { port: AGENT_PORT }, periodSeconds, failureThreshold, timeoutSeconds: 2 };
}

/**
 * The pod of one executor. Every security choice mirrors the container options of the docker
 * runtime (docker-options.ts, images/README.md) in Kubernetes terms:
 *
 * - uid 1000 (`runAsNonRoot`), all capabilities dropped, `allowPrivilegeEscalation: false`:
 *   the executor needs no privilege; bwrap gets capabilities only in namespaces it creates.
 * - `procMount: Unmasked` (with `hostUsers: false`, which the API requires for it): the
 *   runtime's masks over /proc make the kernel refuse the fresh procfs bwrap mounts; this is
 *   Docker's `systempaths=unconfined`. User namespaces also give each pod its own host uid
 *   range, so RLIMIT_NPROC is not shared by every executor on a node (`UsernsMode: auto`).
 * - seccomp: the Kiln profile (`Localhost`, installed on nodes by infra/kubernetes), because
 *   RuntimeDefault denies the unshare/mount/setns calls bwrap needs.
 * - `readOnlyRootFilesystem` with a size-limited emptyDir on /tmp for sandbox directories.
 * - `restartPolicy: Never`: the control plane decides when an executor is replaced (its keeper
 *   health-checks and replaces it); a kubelet restart would bring back an executor whose
 *   sandboxes the control plane still has records of, all gone.
 * - the token comes from a per-executor Secret, not a literal env value, so it is not in the
 *   pod spec that anyone allowed to `get pods` can read, and RBAC can guard it separately.
 * - no service account token and no service links: untrusted code gets no API credentials
 *   and no environment listing the cluster's services.
 * - readiness and liveness are `grpc` probes on grpc.health.v1 (executor/src/agent/health.ts),
 *   which the agent serves without its token.
 */
export function executorPod(template: Template, executorId: string, opts: ExecutorPodOptions): V1Pod {
  const perExecutor = template.pool.sandboxesPerExecutor;
  const name = objectName(executorId);
  const limitMB = template.resources.memoryMB * perExecutor + EXECUTOR_OVERHEAD_MB;
  // Requests are what one busy sandbox needs, limits what a full executor may use: requesting the
  // full pool would make executors unschedulable on ordinary nodes while most sit half empty.
  const requestMB = Math.min(template.resources.memoryMB + EXECUTOR_OVERHEAD_MB, limitMB);
  const dataMB = template.resources.diskMB * perExecutor;
  const millicpu = (cpu: number) => `${Math.max(1, Math.round(cpu * 1000))}m`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: metadata(template, executorId, opts),
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 10,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      ...(opts.serviceAccountName ? { serviceAccountName: opts.serviceAccountName } : {}),
      ...(opts.userNamespaces ? { hostUsers: false } : {}),
      securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, seccompProfile: opts.seccompProfile },
      containers: [
        {
          name: 'executor',
          image: template.image,
          imagePullPolicy: opts.imagePullPolicy,
          env: [
            { name: 'KILN_AGENT_LISTEN', value: `0.0.0.0:${AGENT_PORT}` },
            { name: 'KILN_AGENT_TOKEN', valueFrom: { secretKeyRef: { name, key: TOKEN_KEY } } },
            { name: 'KILN_EXECUTOR_ID', value: executorId },
            { name: 'KILN_TEMPLATE', value: template.name },
            { name: 'KILN_MAX_SANDBOXES', value: String(perExecutor) },
            { name: 'KILN_RUNTIMES', value: templateRunners(template).join(',') },
            { name: 'KILN_DATA_DIR', value: '/tmp/kiln-executor' },
            ...nfsEnv(opts),
          ],
          ports: [{ name: 'grpc', containerPort: AGENT_PORT, protocol: 'TCP' }, ...(opts.nfs ? [{ name: 'nfs', containerPort: NFS_PORT, protocol: 'TCP' }] : [])],
          resources: {
            requests: { cpu: millicpu(template.resources.cpu), memory: `${requestMB}Mi` },
            limits: { cpu: millicpu(template.resources.cpu * perExecutor), memory: `${limitMB}Mi`, 'ephemeral-storage': `${dataMB}Mi` },
          },
          readinessProbe: grpcProbe(2, 3),
          // Generous: a busy executor must not be killed for one slow answer.
          livenessProbe: { ...grpcProbe(10, 3), initialDelaySeconds: 10 },
          securityContext: {
            runAsNonRoot: true,
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
            readOnlyRootFilesystem: true,
            ...(opts.userNamespaces ? { procMount: 'Unmasked' } : {}),
          },
          volumeMounts: [{ name: 'data', mountPath: '/tmp' }],
        },
      ],
      volumes: [{ name: 'data', emptyDir: { sizeLimit: `${dataMB}Mi` } }],
    },
  };
}

/** The Secret holding one executor's agent token (read back by `list` after a restart). */
export function executorSecret(template: Template, executorId: string, token: string, opts: ExecutorPodOptions): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadata(template, executorId, opts),
    type: 'Opaque',
    // stringData would come back as data anyway; base64 here keeps reads and writes symmetric.
    data: { [TOKEN_KEY]: Buffer.from(token, 'utf8').toString('base64') },
  };
}

/** A ClusterIP Service in front of one executor (KILN_K8S_SERVICE_MODE=service). */
export function executorService(template: Template, executorId: string, opts: ExecutorPodOptions): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(template, executorId, opts),
    spec: {
      type: 'ClusterIP',
      selector: { [LABELS.deployment]: labelValue(opts.deployment), [LABELS.executor]: labelValue(executorId) },
      ports: [{ name: 'grpc', port: AGENT_PORT, targetPort: AGENT_PORT, protocol: 'TCP' }, ...(opts.nfs ? [{ name: 'nfs', port: NFS_PORT, targetPort: NFS_PORT, protocol: 'TCP' }] : [])],
      // The agent is reachable as soon as it listens; the readiness gate is start()'s own watch.
      publishNotReadyAddresses: false,
    },
  };
}
