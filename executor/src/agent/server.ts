import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { AgentService, type AgentServer, type SandboxInfo } from '@kiln/proto/executor';
import type { ExecutorConfig } from '../config.js';
import { invoke } from '../lambda/invoke.js';
import { InvalidCodePathError } from '../lambda/code.js';
import { CapacityError, SandboxNotFoundError, UnsupportedRuntimeError, type SandboxManager } from '../sandbox/manager.js';
import { SandboxBootError, type Sandbox } from '../sandbox/sandbox.js';
import { grpcError, unary } from './auth.js';
import { addHealthService } from './health.js';
import { sessionHandlers } from './session-handlers.js';

/** Large enough for Lambda's 6 MB payloads plus code packages sent on a cold start. */
export const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function mapError(err: unknown): ServiceError {
  if (err instanceof SandboxNotFoundError) return grpcError(status.NOT_FOUND, err.message);
  if (err instanceof CapacityError) return grpcError(status.RESOURCE_EXHAUSTED, err.message);
  if (err instanceof UnsupportedRuntimeError || err instanceof InvalidCodePathError) return grpcError(status.INVALID_ARGUMENT, err.message);
  if (err instanceof SandboxBootError) return grpcError(status.UNAVAILABLE, err.message);
  return grpcError(status.INTERNAL, (err as Error)?.message ?? String(err));
}

function info(s: Sandbox): SandboxInfo {
  return { sandboxId: s.id, runtime: s.runtime, pid: s.pid, bootMs: s.bootMs, functionKey: s.functionKey, createdAtMs: s.createdAt };
}

/** How the executor bounds its sandboxes (Health reports it): see sandbox/cgroup.ts. */
export interface LimitsReport {
  limits: 'cgroup-v1' | 'cgroup-v2' | 'none';
  detail: string;
}

/** The gRPC agent: a thin edge over the sandbox manager and the invoke logic. */
export function createAgentServer(config: ExecutorConfig, sandboxes: SandboxManager, limits: LimitsReport = { limits: 'none', detail: 'not configured' }): Server {
  const started = Date.now();
  const t = config.token;
  const impl: AgentServer = {
    health: unary(t, () => Promise.resolve({
      executorId: config.executorId,
      template: config.template,
      sandboxes: sandboxes.size,
      maxSandboxes: config.maxSandboxes,
      runtimes: config.runtimes,
      uptimeMs: Date.now() - started,
      limits: limits.limits,
      limitsDetail: limits.detail,
      workspaceFs: sandboxes.workspaceFs.kind,
      workspaceFsDetail: sandboxes.workspaceFs.detail,
    }), mapError),
    createSandbox: unary(t, async (call) => {
      const r = call.request;
      const limits = {
        memoryMB: r.resources?.memoryMb || 512,
        cpus: r.resources?.cpu || 1,
        diskMB: r.resources?.diskMb || 512,
        maxProcesses: r.resources?.maxProcesses || 256,
        maxOpenFiles: r.resources?.maxOpenFiles || 1024,
      };
      return info(await sandboxes.create(r.sandboxId, r.runtime, limits, r.allowNetwork, r.allowCidrs));
    }, mapError),
    destroySandbox: unary(t, async (call) => ({ existed: await sandboxes.destroy(call.request.sandboxId) }), mapError),
    listSandboxes: unary(t, () => Promise.resolve({ sandboxes: sandboxes.list().filter((s) => s.state !== 'dead').map(info) }), mapError),
    invoke: unary(t, async (call) => {
      const sandbox = sandboxes.get(call.request.sandboxId);
      const res = await invoke(sandbox, call.request);
      // A dead sandbox frees its slot now; the control plane drops its record when it sees sandboxAlive=false.
      if (!res.sandboxAlive) void sandboxes.destroy(sandbox.id);
      return res;
    }, mapError),
    ...sessionHandlers(t, sandboxes, mapError),
  };
  const server = new Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  server.addService(AgentService, impl);
  // grpc.health.v1 for Kubernetes' grpc probes (no token: it only says "serving").
  addHealthService(server);
  return server;
}

/** Binds the server and returns the port it got (useful with port 0). */
export function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, boundPort) => (err ? reject(err) : resolve(boundPort)));
  });
}
