/**
 * The executor's session → sandbox bindings, seen by the NFS server as its
 * export table. The control plane binds a session when it leases a sandbox
 * to it (SessionBind) and unbinds it when the session ends; a sandbox that
 * dies or is destroyed takes its binding with it, so its export disappears
 * (MNT → NOENT, handles → STALE) without waiting for the unbind.
 */
import { isIP } from 'node:net';
import type { SandboxManager } from '../sandbox/manager.js';
import type { ExportResolver, NfsExport } from './types.js';

/** Export names are session ids: one path component, nothing a mount path could misread. */
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** Per-session NFS options, as the control plane sends them. */
export interface SessionExportOptions {
  readOnly: boolean;
  /** IPs or CIDRs; empty allows every client. */
  allow: string[];
}

/** A bind request the executor cannot honour; the message says what to change. */
export class SessionBindError extends Error {
  constructor(
    readonly reason: 'invalid' | 'conflict',
    message: string,
  ) {
    super(message);
    this.name = 'SessionBindError';
  }
}

/** Why an allow-list entry is unusable, or undefined when it is a valid IP or CIDR. */
export function allowEntryProblem(entry: string): string | undefined {
  const slash = entry.indexOf('/');
  const ip = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIP(ip);
  if (family === 0) return `"${entry}" is not an IP address or CIDR (e.g. 10.0.0.0/8, 192.168.1.5, fd00::/8)`;
  if (slash < 0) return undefined;
  const bits = entry.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `"${entry}" has a prefix length outside 0-${max}`;
  return undefined;
}

interface Binding {
  sandboxId: string;
  options: SessionExportOptions;
}

/**
 * Session bindings of one executor; also the NFS server's {@link ExportResolver}. main.ts makes
 * the one table and hands it to both the Nfs gRPC service (bind, unbind) and the NFS server
 * (resolve). It holds nothing to close: bindings are plain data, and die with the executor.
 */
export class SessionExports implements ExportResolver {
  private readonly bindings = new Map<string, Binding>();

  constructor(private readonly sandboxes: SandboxManager) {}

  /**
   * Binds `sessionId` to a live sandbox. Rebinding to the same sandbox replaces the options
   * (idempotent for retries); a session is never moved to another sandbox, since handles
   * already handed out must not start pointing at different files.
   */
  bind(sessionId: string, sandboxId: string, options: SessionExportOptions): void {
    if (!SESSION_ID.test(sessionId)) throw new SessionBindError('invalid', `session id must match ${SESSION_ID}; got "${sessionId}"`);
    for (const entry of options.allow) {
      const problem = allowEntryProblem(entry);
      if (problem) throw new SessionBindError('invalid', `nfs.allow: ${problem}`);
    }
    this.sandboxes.get(sandboxId); // throws SandboxNotFoundError for unknown or dead sandboxes
    const cur = this.bindings.get(sessionId);
    if (cur && cur.sandboxId !== sandboxId && this.live(cur)) {
      throw new SessionBindError('conflict', `session "${sessionId}" is already bound to sandbox ${cur.sandboxId}; unbind it first`);
    }
    this.bindings.set(sessionId, { sandboxId, options: { readOnly: options.readOnly, allow: [...options.allow] } });
  }

  /** Forgets a session; true when it was bound. */
  unbind(sessionId: string): boolean {
    return this.bindings.delete(sessionId);
  }

  resolve(id: string): NfsExport | undefined {
    const b = this.bindings.get(id);
    if (!b) return undefined;
    const spec = this.spec(b);
    if (!spec) {
      this.bindings.delete(id);
      return undefined;
    }
    return { id, root: spec.workspaceDir, readOnly: b.options.readOnly, allow: b.options.allow, uid: spec.hostUid, gid: spec.hostGid };
  }

  private live(b: Binding): boolean {
    return this.spec(b) !== undefined;
  }

  private spec(b: Binding): { workspaceDir: string; hostUid: number; hostGid: number } | undefined {
    try {
      return this.sandboxes.get(b.sandboxId).spec;
    } catch {
      // SandboxNotFoundError: the sandbox is gone, and with it the export.
      return undefined;
    }
  }
}
