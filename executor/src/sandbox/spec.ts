import type { EgressPolicy } from '../egress/policy.js';
import type { VolumeBind } from './volumes.js';

/** Everything the launcher needs to start one sandbox. */
export interface SandboxSpec {
  id: string;
  /** The language runner it boots: "nodejs", "python" or "provided". */
  runner: string;
  /** Host directory bound read-write at /workspace. */
  workspaceDir: string;
  /** Host directory bound read-only at /var/task; the executor writes function code into it. */
  taskDir: string;
  /** Host directory with the language runners (executor/runtime), bound read-only at /opt/kiln/runtime. */
  runnerDir: string;
  /** Host directory with the sandbox's synthetic /etc files (passwd, group, hosts). */
  etcDir: string;
  memoryMB: number;
  /** CPU time as a share of one core (template `resources.cpu`), enforced by the sandbox's cgroup. */
  cpus: number;
  tmpMB: number;
  maxProcesses: number;
  maxOpenFiles: number;
  /** Size of /workspace in MB: hard (ENOSPC) where the executor can mount images (workspace-fs.ts). */
  diskMB: number;
  /** Largest file the sandbox may write, in MB (RLIMIT_FSIZE). */
  maxFileMB: number;
  /** Outbound network through the sandbox's own namespace (network.ts); without it, loopback only. */
  allowNetwork: boolean;
  /** Private IPv4 ranges the template opens to an outbound sandbox (network.ts denies them otherwise). */
  allowCidrs?: readonly string[];
  /** An egress policy: the sandbox leaves only through Kiln's proxy and DNS (egress/), never slirp4netns. */
  egress?: EgressPolicy;
  /** Host uid/gid the sandbox runs as (its uid inside is always 1000). */
  /** Named volumes bound into the sandbox (volumes.ts resolved and mounted them). */
  volumes?: readonly VolumeBind[];
  hostUid: number;
  hostGid: number;
}

export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
