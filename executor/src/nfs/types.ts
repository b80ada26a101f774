/** One exported session workspace. */
export interface NfsExport {
  /** export name = session id; clients mount "/<id>" or any directory below it */
  id: string;
  /** absolute host directory that is the session's /workspace */
  root: string;
  readOnly: boolean;
  /** client address allow-list (IPs or CIDRs); empty/undefined = allow all */
  allow?: string[];
  /** host uid/gid that files created over NFS must be owned by (chown after create when running as root; ignore EPERM when not root) */
  uid: number;
  gid: number;
}

/** Looks exports up by id; called on every request, so it must be cheap. */
export interface ExportResolver {
  resolve(id: string): NfsExport | undefined;
}

/** Options for {@link NfsServer}. */
export interface NfsServerOptions {
  resolver: ExportResolver;
  /** Address to bind; defaults to 127.0.0.1 so nothing is exposed unless asked. */
  host?: string;
  /** TCP port; 0 = ephemeral. */
  port?: number /* 0 = ephemeral */;
  /**
   * IPs or CIDRs of proxies (the control plane's NFS gateway) allowed to open a connection with
   * a PROXY protocol v1 line naming the real client; empty or absent trusts nobody.
   */
  trustedProxies?: readonly string[];
  /**
   * The executor's agent token: a PROXY line from a trusted peer is believed only when the
   * `KILN-AUTH` line after it proves the sender holds it (proxy-line.ts). Undefined: the address
   * alone decides (tests).
   */
  proxyKey?: string;
  /** Where to report server faults (and per-call traces); defaults to stderr, traces only with KILN_NFS_TRACE=1. */
  log?: NfsLogger;
}

/** Diagnostic sink: `fault` for unexpected failures (server bugs), `trace` for per-call tracing when enabled. */
export interface NfsLogger {
  fault(msg: string, err?: unknown): void;
  trace?(msg: string): void;
}
