import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { EgressService } from '@kiln/proto/executor/egress';
import { InterpreterService } from '@kiln/proto/executor/interpreter';
import { InvokeService } from '@kiln/proto/executor/invoke';
import { NfsService } from '@kiln/proto/executor/nfs';
import { ProcessesService } from '@kiln/proto/executor/process';
import { PtyService } from '@kiln/proto/executor/pty';
import { SandboxesService } from '@kiln/proto/executor/sandboxes';
import type { ExecutorConfig } from '../config.js';
import type { SessionExports } from '../nfs/session-exports.js';
import { ProcessTable } from '../process/registry.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { EgressStep } from '../egress/step.js';
import { egressService } from './egress-service.js';
import { filesService, FilesWireService } from './files-service.js';
import { addHealthService } from './health.js';
import { interpreterService } from './interpreter-service.js';
import { ContextTable } from '../interpreter/contexts.js';
import { invokeService } from './invoke-service.js';
import { nfsService, type NfsEndpoint } from './nfs-service.js';
import { processesService } from './process-service.js';
import { ptyService } from './pty-service.js';
import { Rpc } from './rpc.js';
import { sandboxesService, type LimitsReport } from './sandboxes-service.js';

export type { LimitsReport } from './sandboxes-service.js';

/** Large enough for Lambda's 6 MB payloads plus code packages sent on a cold start. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** What the agent serves: the executor's sandboxes and the tables that live beside them. */
export interface AgentDeps {
  sandboxes: SandboxManager;
  /** The session → sandbox table the NFS server resolves exports from. */
  exports: SessionExports;
  /** The executor's NFS server, when it runs one. */
  nfs?: NfsEndpoint;
  limits?: LimitsReport;
  /** The egress proxies of sandboxes with an egress policy. */
  egress?: EgressStep;
}

/**
 * The gRPC agent: one service per capability (invoke, sandboxes, processes, files, pty, nfs, interpreter),
 * all on one server and one port, each a thin edge over the executor's modules. Every method
 * checks the agent token and reports failures through the one error channel (rpc.ts).
 */
export function createAgentServer(config: ExecutorConfig, deps: AgentDeps): Server {
  const rpc = new Rpc(config.token);
  // One table for both: tar runs as a session process, so it counts with the session's own.
  const processes = new ProcessTable();
  const server = new Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  // Kernels are session processes too: they count, and are listed, with the session's own.
  const contexts = new ContextTable(processes);
  rpc.serve(server, SandboxesService, sandboxesService(rpc, config, deps.sandboxes, deps.limits ?? { limits: 'none', detail: 'not configured' }, contexts));
  rpc.serve(server, InvokeService, invokeService(rpc, deps.sandboxes));
  rpc.serve(server, ProcessesService, processesService(rpc, deps.sandboxes, processes));
  rpc.serve(server, FilesWireService, filesService(rpc, deps.sandboxes, processes));
  rpc.serve(server, PtyService, ptyService(rpc, deps.sandboxes));
  rpc.serve(server, NfsService, nfsService(rpc, deps.exports, deps.nfs));
  if (deps.egress) rpc.serve(server, EgressService, egressService(rpc, deps.sandboxes, deps.egress));
  rpc.serve(server, InterpreterService, interpreterService(rpc, deps.sandboxes, contexts));
  // grpc.health.v1 for Kubernetes' grpc probes (no token: it only says "serving").
  addHealthService(server);
  return server;
}

/** Binds the server and returns the port it got (useful with port 0). */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, boundPort) => {
      if (err) return reject(err);
      widenWindows(server);
      resolve(boundPort);
    });
  });
}

/** HTTP/2 flow-control window for uploads to this executor (the control plane's client sets its own). */
const FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;

/**
 * grpc-js's Server has no option for its HTTP/2 window (its client has
 * `grpc-node.flow_control_window`), and the default 64 KB makes an upload a round trip per
 * 64 KB, each waiting for both processes to be scheduled: ~10 MB/s on a loaded host. This
 * reaches its HTTP/2 servers (a private field; if a release renames it, nothing changes but the
 * speed) and widens the stream and connection windows of every session they accept. Bounded:
 * the window is the most a control plane can have in flight to this executor per stream.
 */
function widenWindows(server: Server): void {
  const servers = (server as unknown as { http2Servers?: Map<Http2Server, unknown> }).http2Servers;
  if (!(servers instanceof Map)) return;
  for (const h2 of servers.keys()) {
    if (typeof h2.updateSettings !== 'function') continue;
    h2.updateSettings({ initialWindowSize: FLOW_CONTROL_WINDOW });
    h2.on('session', (session: ServerHttp2Session) => {
      session.once('localSettings', () => session.setLocalWindowSize(FLOW_CONTROL_WINDOW));
    });
  }
}
