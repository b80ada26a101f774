import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allowEntryProblem } from './nfs/session-exports.js';

/** Parses an env var name/value pair, naming the variable when it is wrong. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const schema = z.object({
  KILN_EXECUTOR_ID: z.string().min(1).default(`exec-${process.pid}`),
  KILN_TEMPLATE: z.string().min(1).default('default'),
  /** host:port the gRPC agent listens on; port 0 picks a free one (reported on stdout). */
  KILN_AGENT_LISTEN: z.string().regex(/^[^:]+:\d+$/, 'expected host:port').default('127.0.0.1:0'),
  /**
   * A file (mode 0600, owned by the executor's uid) holding the bearer token every gRPC call
   * must carry. The way the local platform passes it: a file is in no process's environment.
   */
  KILN_AGENT_TOKEN_FILE: z.string().default(''),
  /**
   * The token itself, for runtimes that can only pass environment variables (containers, pods);
   * main.ts deletes it from the environment before anything is spawned. Empty, with no token
   * file, disables auth (tests only).
   */
  KILN_AGENT_TOKEN: z.string().default(''),
  KILN_DATA_DIR: z.string().min(1).default(join(tmpdir(), 'kiln-executor')),
  KILN_MAX_SANDBOXES: z.coerce.number().int().min(1).max(4096).default(16),
  /** Comma-separated language runners this executor's image offers (KILN_RUNTIMES). */
  KILN_RUNTIMES: z.string().default('nodejs,python,provided'),
  /** First host uid for sandboxes when the executor runs as root (one uid per sandbox slot). */
  KILN_SANDBOX_UID_BASE: z.coerce.number().int().min(1000).default(200_000),
  /**
   * Host-wide directory of uid-range leases (one flock'ed file per block of 1000 uids), shared by
   * every executor on the host whatever its deployment or Redis; "off" disables the lease.
   */
  KILN_SANDBOX_UID_LEASE_DIR: z.string().min(1).default('/run/kiln/uids'),
  KILN_BWRAP_PATH: z.string().default('bwrap'),
  /**
   * host:port of the NFS server that exports session workspaces (port 0 picks a free one,
   * reported on stdout as nfsPort); empty or "off" disables it.
   */
  KILN_NFS_LISTEN: z
    .string()
    .regex(/^(|off|[^:]+:\d{1,5})$/, 'expected host:port (e.g. 127.0.0.1:0), or empty/"off" to disable NFS')
    .default(''),
  /**
   * Comma-separated IPs or CIDRs allowed to open NFS connections with a PROXY protocol v1 line
   * (the control plane's NFS gateway); a PROXY line from anyone else closes the connection.
   */
  KILN_NFS_TRUSTED_PROXIES: z
    .string()
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .refine((list) => list.every((e) => allowEntryProblem(e) === undefined), 'expected comma-separated IPs or CIDRs, e.g. 127.0.0.1,10.0.0.0/8')
    .default(''),
  /**
   * Comma-separated DNS servers (ip or ip:port) that the egress proxy resolves allowed names
   * with; empty: the host's resolvers (/etc/resolv.conf).
   */
  KILN_EGRESS_DNS: z
    .string()
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .refine((list) => list.every((e) => /^\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?$/.test(e)), 'expected comma-separated IPv4 addresses with optional ports, e.g. 192.0.2.53:53')
    .default(''),
  /**
   * The deployment's egress CA (PEM files): with both, the egress proxy can intercept HTTPS to
   * the hosts of secrets that opt in (`https`). The key must be readable by the executor only.
   */
  KILN_EGRESS_CA_CERT: z.string().optional(),
  KILN_EGRESS_CA_KEY: z.string().optional(),
  /** A PEM file of extra CAs the egress proxy trusts when it opens TLS to a host itself (beside the system's). */
  KILN_EGRESS_UPSTREAM_CA: z.string().optional(),
  /**
   * Host-wide directory of named volumes (sandbox/volumes.ts), shared by every executor of the
   * host and outside their data dirs; must be an absolute path. Empty: this executor hosts no volumes.
   */
  KILN_VOLUME_DIR: z.string().regex(/^(|\/[^\t\n']*)$/, 'expected an absolute path without tabs, newlines or quotes').default(''),
  /** How long a volume no sandbox of the host uses stays mounted (sandbox/volumes.ts), ms. */
  KILN_VOLUME_IDLE_UNMOUNT_MS: z.coerce.number().int().min(0).max(86_400_000).default(10_000),
});

export type ExecutorConfig = {
  executorId: string;
  template: string;
  listenHost: string;
  listenPort: number;
  token: string;
  dataDir: string;
  maxSandboxes: number;
  runners: string[];
  sandboxUidBase: number;
  /** Where the uid-range leases live; undefined when off. */
  sandboxUidLeaseDir: string | undefined;
  bwrapPath: string;
  /** Where the NFS server listens; undefined when NFS is off. */
  nfs: { host: string; port: number; trustedProxies: string[] } | undefined;
  /** Where the egress proxy resolves allowed names; empty: the host's resolvers. */
  egressDns: string[];
  /** The egress CA and the extra upstream CAs (KILN_EGRESS_CA_CERT/KEY, KILN_EGRESS_UPSTREAM_CA); undefined: no HTTPS interception. */
  egressCa: { cert: string; key: string; upstreamCa: string | undefined } | undefined;
  /** Where the host's volumes are (KILN_VOLUME_DIR); undefined: none hosted here. */
  volumeDir: string | undefined;
  /** How long an unused volume stays mounted (KILN_VOLUME_IDLE_UNMOUNT_MS). */
  volumeIdleUnmountMs: number;
};

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ExecutorConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue?.path[0] ?? 'env'), issue?.message ?? 'invalid');
  }
  const e = parsed.data;
  const colon = e.KILN_AGENT_LISTEN.lastIndexOf(':');
  return {
    executorId: e.KILN_EXECUTOR_ID,
    template: e.KILN_TEMPLATE,
    listenHost: e.KILN_AGENT_LISTEN.slice(0, colon),
    listenPort: Number(e.KILN_AGENT_LISTEN.slice(colon + 1)),
    token: e.KILN_AGENT_TOKEN_FILE ? readTokenFile(e.KILN_AGENT_TOKEN_FILE) : e.KILN_AGENT_TOKEN,
    dataDir: e.KILN_DATA_DIR,
    maxSandboxes: e.KILN_MAX_SANDBOXES,
    runners: e.KILN_RUNTIMES.split(',').map((s) => s.trim()).filter(Boolean),
    sandboxUidBase: e.KILN_SANDBOX_UID_BASE,
    sandboxUidLeaseDir: e.KILN_SANDBOX_UID_LEASE_DIR === 'off' ? undefined : e.KILN_SANDBOX_UID_LEASE_DIR,
    bwrapPath: e.KILN_BWRAP_PATH,
    nfs: parseNfsListen(e.KILN_NFS_LISTEN, e.KILN_NFS_TRUSTED_PROXIES),
    egressDns: e.KILN_EGRESS_DNS,
    volumeDir: e.KILN_VOLUME_DIR === '' ? undefined : e.KILN_VOLUME_DIR.replace(/\/+$/, '') || '/',
    volumeIdleUnmountMs: e.KILN_VOLUME_IDLE_UNMOUNT_MS,
    egressCa: e.KILN_EGRESS_CA_CERT && e.KILN_EGRESS_CA_KEY ? { cert: e.KILN_EGRESS_CA_CERT, key: e.KILN_EGRESS_CA_KEY, upstreamCa: e.KILN_EGRESS_UPSTREAM_CA } : undefined,
  };
}

/**
 * Reads the agent token from its file, refusing one that anyone but the executor's own uid could
 * have read (or written): a token others can read is no secret.
 */
function readTokenFile(path: string): string {
  const name = 'KILN_AGENT_TOKEN_FILE';
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new ConfigError(name, `cannot open ${path}: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    const uid = process.getuid?.() ?? st.uid;
    if (!st.isFile()) throw new ConfigError(name, `${path} is not a regular file`);
    if (st.uid !== uid) throw new ConfigError(name, `${path} is owned by uid ${st.uid}, not by the executor's uid ${uid}`);
    if ((st.mode & 0o077) !== 0) throw new ConfigError(name, `${path} has mode ${(st.mode & 0o777).toString(8)}; make it 600 (no access for group or others)`);
    const token = readFileSync(fd, 'utf8').trim();
    if (!token) throw new ConfigError(name, `${path} is empty`);
    return token;
  } finally {
    closeSync(fd);
  }
}

function parseNfsListen(value: string, trustedProxies: string[]): ExecutorConfig['nfs'] {
  if (value === '' || value === 'off') return undefined;
  const colon = value.lastIndexOf(':');
  const port = Number(value.slice(colon + 1));
  if (port > 65535) throw new ConfigError('KILN_NFS_LISTEN', `port must be 0-65535; got ${port}`);
  return { host: value.slice(0, colon), port, trustedProxies };
}
