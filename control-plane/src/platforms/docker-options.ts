import type { ContainerCreateOptions } from 'dockerode';
import type { Template } from '../templates/template.js';
import { templateRunners } from '../templates/template.js';

/** Port the executor's gRPC agent listens on inside its container. */
export const AGENT_PORT = 7070;
/** Port the executor's NFS server (NFSv3 + MOUNT) listens on inside its container. */
export const NFS_PORT = 2049;

/** Label keys every executor container carries (`Runtime.list` filters on them). */
export const LABELS = { deployment: 'kiln.deployment', template: 'kiln.template', executor: 'kiln.executor' } as const;

/** Memory the executor process itself needs beside its sandboxes. */
const EXECUTOR_OVERHEAD_MB = 256;
/** Processes of the executor itself (node, tini, launchers) beside its sandboxes'. */
const EXECUTOR_OVERHEAD_PIDS = 128;

/** Which engine serves the API: the seccomp option and user namespaces differ. */
export type EngineFlavour = 'docker' | 'podman';

export interface ExecutorContainerSpec {
  template: Template;
  executorId: string;
  deployment: string;
  token: string;
  network: string;
  flavour: EngineFlavour;
  /** The seccomp profile: a path the Podman service opens, or the JSON Docker wants. */
  seccomp: { path: string; json: string };
  /** CPUs of the engine's host; NanoCpus above it is refused by the engine. */
  hostCpus: number;
  /**
   * NFS export of session workspaces; absent turns the executor's NFS server off.
   * `trustedProxies`: addresses whose PROXY lines the executor believes (the control plane's).
   */
  nfs?: { trustedProxies: string[] };
}

/**
 * The create options of one executor container. Every security choice here is what bubblewrap
 * needs and no more (images/README.md, "Runtime: container options for bubblewrap"):
 *
 * - `User: kiln`, `CapDrop: [ALL]`, `no-new-privileges`: the executor needs no privilege; bwrap
 *   is not setuid and gets capabilities only inside the user namespaces it creates.
 * - `systempaths=unconfined`: the engine's masks over /proc make the kernel refuse the fresh
 *   procfs mount bwrap needs ("mount_too_revealing"); the unmasked files stay root-only.
 * - `seccomp=<Kiln profile>`: Podman's default plus sethostname/setdomainname/setns/chroot,
 *   which bwrap `--hostname` and `nsenter` use; they only succeed on namespaces the executor
 *   created itself. Podman wants a path, Docker the JSON content.
 * - `UsernsMode: auto` (Podman): each container its own host uid range, so RLIMIT_NPROC (counted
 *   per host uid) is not shared by every executor on the host. Docker relies on `PidsLimit`.
 * - `ReadonlyRootfs` with a size-limited tmpfs for the executor's data (sandbox directories).
 * - No published ports: the control plane reaches the agent (and the NFS server, port 2049) on
 *   the container's address in the executor network (`DockerPlatform`); the agent demands the
 *   token on every call, and NFS believes PROXY lines only from the network's gateway address.
 *   (2049 is above 1024: the non-root executor binds it without any privilege.)
 */
export function executorContainerOptions(spec: ExecutorContainerSpec): ContainerCreateOptions {
  const { template, executorId } = spec;
  const perExecutor = template.pool.sandboxesPerExecutor;
  const memoryMB = template.resources.memoryMB * perExecutor + EXECUTOR_OVERHEAD_MB;
  const cpus = Math.min(template.resources.cpu * perExecutor, spec.hostCpus);
  const dataMB = template.resources.diskMB * perExecutor;
  return {
    name: containerName(spec.deployment, executorId),
    Image: template.image,
    User: 'kiln',
    Env: [
      `KILN_AGENT_LISTEN=0.0.0.0:${AGENT_PORT}`,
      `KILN_AGENT_TOKEN=${spec.token}`,
      `KILN_EXECUTOR_ID=${executorId}`,
      `KILN_TEMPLATE=${template.name}`,
      `KILN_MAX_SANDBOXES=${perExecutor}`,
      `KILN_RUNTIMES=${templateRunners(template).join(',')}`,
      'KILN_DATA_DIR=/tmp/kiln-executor',
      ...(spec.nfs ? [`KILN_NFS_LISTEN=0.0.0.0:${NFS_PORT}`, `KILN_NFS_TRUSTED_PROXIES=${spec.nfs.trustedProxies.join(',')}`] : ['KILN_NFS_LISTEN=off']),
    ],
    Labels: { [LABELS.deployment]: spec.deployment, [LABELS.template]: template.name, [LABELS.executor]: executorId },
    ExposedPorts: { [`${AGENT_PORT}/tcp`]: {}, ...(spec.nfs ? { [`${NFS_PORT}/tcp`]: {} } : {}) },
    HostConfig: {
      NetworkMode: spec.network,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges', 'systempaths=unconfined', `seccomp=${spec.flavour === 'podman' ? spec.seccomp.path : spec.seccomp.json}`],
      ...(spec.flavour === 'podman' ? { UsernsMode: 'auto' } : {}),
      ReadonlyRootfs: true,
      // exec: sandbox users run scripts from /workspace, which lives here.
      Tmpfs: { '/tmp': `rw,exec,nosuid,nodev,size=${dataMB}m` },
      NanoCpus: Math.round(cpus * 1e9),
      Memory: memoryMB * 1024 * 1024,
      // Same as Memory: no swap beyond the limit.
      MemorySwap: memoryMB * 1024 * 1024,
      PidsLimit: template.resources.maxProcesses * perExecutor + EXECUTOR_OVERHEAD_PIDS,
      // The control plane decides when an executor is replaced; the engine never restarts one.
      RestartPolicy: { Name: 'no' },
      Init: false,
    },
  };
}

/** A container name unique per deployment and executor (the engine rejects duplicates). */
export function containerName(deployment: string, executorId: string): string {
  return `kiln-${deployment}-${executorId}`.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/** The default executor network of a deployment. */
export function defaultNetworkName(deployment: string): string {
  return `kiln-executors-${deployment}`.replace(/[^A-Za-z0-9_.-]/g, '-');
}

/** Reads one variable back from a container's `Config.Env` (the token, on adoption). */
export function envValue(env: string[] | undefined, name: string): string | undefined {
  const entry = env?.find((e) => e.startsWith(`${name}=`));
  return entry?.slice(name.length + 1);
}
