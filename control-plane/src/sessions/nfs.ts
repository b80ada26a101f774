/**
 * NFS export of a session's /workspace. Each executor runs one NFSv3 server (NFS and MOUNT on
 * one port); binding a session to its sandbox makes the executor export the sandbox's
 * /workspace as /<session-id>-<secret>. Clients reach it on KILN_NFS_HOST, either through the control
 * plane's single-port gateway (KILN_NFS_PORT, nfs-gateway/) or on the executor's own port.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { Agent } from '../agent/client.js';
import { sessionRpcError } from '../agent/session-client.js';
import { KilnError } from '../errors.js';
import type { ExecutorHandle } from '../platforms/platform.js';
import type { Keys } from '../store/keys.js';

/** What a client asked for at session create. */
export interface NfsExportInput {
  readOnly?: boolean;
  /** IPs or CIDRs that may mount; empty or absent allows every client. */
  allow?: string[];
}

/** What the session record keeps about its export. */
export interface SessionNfs {
  /** The export's name on the executor: `<session-id>-<secret>`; absent on records from before the secret (then the session id). */
  exportName?: string;
  /** Where clients connect: the gateway, or the executor's own NFS port. */
  host: string;
  port: number;
  readOnly: boolean;
  allow: string[];
  /** Hex export tag of the session's file handles (SessionBind); the gateway routes by it. */
  tag?: string;
  /** The executor's NFS server as the control plane reaches it (the gateway's upstream). */
  upstream?: { host: string; port: number };
}

/** The export as GET /sessions/{id} shows it (routing details stay internal). */
export interface SessionNfsView {
  host: string;
  port: number;
  readOnly: boolean;
  allow: string[];
  /** The path clients mount: /<session-id>-<secret>. */
  exportPath: string;
  /** libnfs URL of the export root. */
  url: string;
  /** The equivalent Linux mount command (mounts on /mnt). */
  mountCommand: string;
}

/** An allow-list entry that is neither an IP nor a CIDR. */
export class InvalidNfsAllowError extends KilnError {
  constructor(entry: string, problem: string) {
    super('InvalidNfsAllowList', 400, `nfs.allow: ${problem}`, { entry });
  }
}

/** NFS options were given but this deployment serves no NFS. */
export class NfsDisabledError extends KilnError {
  constructor() {
    super('NfsDisabled', 400, 'nfs options were given but NFS export is off in this deployment; drop "nfs" from the request or set KILN_NFS_ENABLED=true', {});
  }
}

/** Limits the list a client may send; more entries than this is surely a mistake. */
const MAX_ALLOW_ENTRIES = 64;

/** Checks every allow-list entry (IPv4/IPv6 address or CIDR) and returns the list trimmed. */
export function validateAllowList(allow: string[] = []): string[] {
  if (allow.length > MAX_ALLOW_ENTRIES) throw new InvalidNfsAllowError(String(allow.length), `at most ${MAX_ALLOW_ENTRIES} entries; got ${allow.length}`);
  return allow.map((raw) => {
    const entry = raw.trim();
    const slash = entry.indexOf('/');
    const ip = slash < 0 ? entry : entry.slice(0, slash);
    const family = isIP(ip);
    if (family === 0) throw new InvalidNfsAllowError(raw, `"${raw}" is not an IP address or CIDR; use e.g. 203.0.113.7, 10.0.0.0/8 or fd00::/8`);
    if (slash >= 0) {
      const bits = entry.slice(slash + 1);
      const max = family === 4 ? 32 : 128;
      if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) throw new InvalidNfsAllowError(raw, `"${raw}" needs a prefix length between 0 and ${max}`);
    }
    return entry;
  });
}

/** Redis key of the tag → session id index the gateway reads (written with the session record). */
export function nfsTagKey(keys: Keys, tag: string): string {
  return `${keys.prefix}:nfstag:${tag}`;
}

/** How clients reach NFS in this deployment. */
export interface NfsAccess {
  /** KILN_NFS_HOST. */
  host: string;
  /** The gateway's bound port when KILN_NFS_PORT is set; absent = executors' own ports. */
  gatewayPort?: number;
}

/**
 * Where the control plane reaches an executor's NFS server: the adapter's NFS host, else the
 * host of its agent address (the same machine, container or pod).
 */
function upstreamHost(executor: ExecutorHandle): string {
  if (executor.nfsHost) return executor.nfsHost;
  const host = executor.address.slice(0, executor.address.lastIndexOf(':'));
  return host.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Binds the session to its sandbox on the executor so that its /workspace is exported.
 * Returns undefined when the executor serves no NFS (the session then has no nfsUrl).
 * `keepName` re-exports under the name the session had (a restore from hibernation), so its
 * clients' mount path stays the same.
 */
export async function bindSessionExport(agent: Agent, sessionId: string, sandboxId: string, options: { readOnly: boolean; allow: string[] }, access: NfsAccess, keepName?: string): Promise<SessionNfs | undefined> {
  if (!agent.executor.nfsPort) return undefined;
  // The export's name is the session id and a secret only the session's tenant is shown: knowing
  // a session id (another tenant may learn one from a log or a label) does not mount it.
  const exportName = keepName ?? `${sessionId}-${randomBytes(16).toString('hex')}`;
  const res = await agent.bindSession(exportName, sandboxId, options).catch((err: unknown) => Promise.reject(sessionRpcError(err, agent.executor.id)));
  // The executor's own answer wins over the recorded port: it is what it listens on now.
  const port = res.nfsPort || agent.executor.nfsPort;
  const upstream = { host: upstreamHost(agent.executor), port };
  const routing = { exportName, upstream, ...(res.nfsExportTag ? { tag: res.nfsExportTag } : {}) };
  if (access.gatewayPort !== undefined) return { host: access.host, port: access.gatewayPort, readOnly: options.readOnly, allow: options.allow, ...routing };
  return { host: agent.executor.nfsHost ?? access.host, port, readOnly: options.readOnly, allow: options.allow, ...routing };
}

/** The name the session's export has on its executor (records from before export secrets: the session id). */
export function exportNameOf(sessionId: string, nfs: Pick<SessionNfs, 'exportName'>): string {
  return nfs.exportName ?? sessionId;
}

/** The session id an export name (or a mount path's first component) names: the part before the secret. */
export function sessionOfExport(name: string): string {
  const dash = name.indexOf('-');
  return dash < 0 ? name : name.slice(0, dash);
}

/** Forgets the session's export on its executor; unknown sessions are a no-op there. */
export async function unbindSessionExport(agent: Agent, exportName: string): Promise<void> {
  await agent.unbindSession(exportName).catch((err: unknown) => Promise.reject(sessionRpcError(err, agent.executor.id)));
}

/** libnfs URL of `path` inside the session's export. */
export function nfsUrl(sessionId: string, nfs: Pick<SessionNfs, 'host' | 'port'>): string {
  const host = isIP(nfs.host) === 6 ? `[${nfs.host}]` : nfs.host;
  return `nfs://${host}/${sessionId}?nfsport=${nfs.port}&mountport=${nfs.port}&version=3`;
}

/** The export as the API shows it. */
export function nfsView(sessionId: string, nfs: SessionNfs): SessionNfsView {
  const host = isIP(nfs.host) === 6 ? `[${nfs.host}]` : nfs.host;
  const ro = nfs.readOnly ? ',ro' : '';
  return {
    host: nfs.host,
    port: nfs.port,
    readOnly: nfs.readOnly,
    allow: nfs.allow,
    exportPath: `/${sessionId}`,
    url: nfsUrl(sessionId, nfs),
    mountCommand: `mount -t nfs -o nfsvers=3,tcp,nolock${ro},port=${nfs.port},mountport=${nfs.port} ${host}:/${sessionId} /mnt`,
  };
}
