import type { Template } from '../templates/template.js';

/** Labels every executor carries, so a deployment can find (and adopt) its own. */
export interface ExecutorLabels {
  deployment: string;
  template: string;
  executor: string;
}

/** How to reach one running executor's gRPC agent. */
export interface ExecutorHandle {
  id: string;
  template: string;
  /** host:port of the agent. */
  address: string;
  token: string;
  /** Where it runs (hostname, node name or "local"), for image-locality preferences. */
  host: string;
  labels: ExecutorLabels;
  /**
   * Port on which NFS clients reach this executor's NFS server (NFSv3 and MOUNT on one port,
   * exporting each bound session's /workspace as /<session-id>). Absent when the executor
   * serves no NFS. For adapters that publish or forward the port (docker, kubernetes), this
   * is the published port, not the one inside the container.
   */
  nfsPort?: number;
  /**
   * Host name NFS clients use for this executor, when the adapter knows a better one than
   * KILN_NFS_HOST (e.g. a node address); absent means KILN_NFS_HOST.
   */
  nfsHost?: string;
}

/**
 * Starts and stops executors for templates. One adapter per platform (local processes,
 * Docker/Podman containers, Kubernetes pods); the scheduler never knows which.
 */
export interface Platform {
  readonly kind: string;
  /** Starts an executor and resolves once its agent listens. */
  start(template: Template, executorId: string): Promise<ExecutorHandle>;
  /** Stops an executor; unknown ids are a no-op. */
  stop(executorId: string): Promise<void>;
  /** Executors of this deployment that are running now (found by label, not by memory). */
  list(): Promise<ExecutorHandle[]>;
  /** Releases the adapter's own resources; executors keep running unless stopped. */
  close(): Promise<void>;
}
