import type { NfsServer, SessionBindRequest, SessionBindResponse } from '@kiln/proto/executor/nfs';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { AgentError, InvalidArgumentError } from '../errors.js';
import { SessionBindError, type SessionExports } from '../nfs/session-exports.js';
import type { Rpc } from './rpc.js';

/** What the Nfs service reports about the executor's NFS server; absent when NFS is off. */
export interface NfsEndpoint {
  port: number;
  /** Hex of the export tag every handle of the session carries (the gateway routes by it). */
  exportTag(sessionId: string): string;
}

/**
 * The Nfs service: binds sessions to their sandboxes in the export table the NFS server
 * resolves from. Bindings are kept when NFS is off (port 0), so turning it on needs no rebind.
 */
export function nfsService(rpc: Rpc, exportsTable: SessionExports, endpoint: NfsEndpoint | undefined): NfsServer {
  function bind({ sessionId, sandboxId, nfs }: SessionBindRequest): SessionBindResponse {
    try {
      exportsTable.bind(sessionId, sandboxId, { readOnly: nfs?.readOnly ?? false, allow: nfs?.allow ?? [] });
    } catch (err) {
      if (!(err instanceof SessionBindError)) throw err;
      if (err.reason === 'invalid') throw new InvalidArgumentError(err.message, { sessionId: sessionId.slice(0, 200) });
      throw new AgentError(ErrorCode.ERROR_CODE_SESSION_ALREADY_BOUND, err.message, { sessionId, sandboxId });
    }
    return { nfsPort: endpoint?.port ?? 0, nfsExportTag: endpoint ? endpoint.exportTag(sessionId) : '' };
  }
  return {
    bind: rpc.unary((req) => bind(req)),
    unbind: rpc.unary((req) => ({ existed: exportsTable.unbind(req.sessionId) })),
  };
}
