import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import {
  AgentClient,
  AgentService,
  type CreateSandboxRequest,
  type HealthResponse,
  type InvokeRequest,
  type InvokeResponse,
  type SandboxInfo,
} from '@kiln/proto/executor';
import type { ExecutorHandle } from '../runtimes/runtime.js';
import { UnaryChannel } from './unary.js';

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * An executor's agent, with promise-returning calls that carry its token. Invoke, the hot
 * path, goes over a lean unary channel of its own (unary.ts); everything else over grpc-js.
 */
export class Agent {
  private readonly client: InstanceType<typeof AgentClient>;
  private readonly metadata = new Metadata();
  private readonly unary: UnaryChannel;

  constructor(readonly executor: ExecutorHandle) {
    this.client = new AgentClient(executor.address, credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 10_000,
    });
    const auth: Record<string, string> = executor.token ? { authorization: `Bearer ${executor.token}` } : {};
    for (const [name, value] of Object.entries(auth)) this.metadata.set(name, value);
    this.unary = new UnaryChannel(executor.address, auth, MAX_MESSAGE_BYTES);
  }

  health(timeoutMs = 2000): Promise<HealthResponse> {
    return this.call((cb, opts) => this.client.health({}, this.metadata, opts, cb), timeoutMs);
  }

  createSandbox(req: CreateSandboxRequest, timeoutMs = 15_000): Promise<SandboxInfo> {
    return this.call((cb, opts) => this.client.createSandbox(req, this.metadata, opts, cb), timeoutMs);
  }

  destroySandbox(sandboxId: string, timeoutMs = 10_000): Promise<boolean> {
    return this.call<{ existed: boolean }>((cb, opts) => this.client.destroySandbox({ sandboxId }, this.metadata, opts, cb), timeoutMs).then((r) => r.existed);
  }

  listSandboxes(timeoutMs = 5000): Promise<SandboxInfo[]> {
    return this.call<{ sandboxes: SandboxInfo[] }>((cb, opts) => this.client.listSandboxes({}, this.metadata, opts, cb), timeoutMs).then((r) => r.sandboxes);
  }

  invoke(req: InvokeRequest, timeoutMs: number): Promise<InvokeResponse> {
    return this.unary.call(AgentService.invoke, req, timeoutMs);
  }

  /** The generated client and the call metadata (with the token), for session RPC wrappers. */
  get grpc(): { client: InstanceType<typeof AgentClient>; metadata: Metadata } {
    return { client: this.client, metadata: this.metadata };
  }

  close(): void {
    this.client.close();
    this.unary.close();
  }

  private call<T>(fn: (cb: (err: ServiceError | null, res: T) => void, opts: { deadline: number }) => void, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      fn((err, res) => (err ? reject(err) : resolve(res)), { deadline: Date.now() + timeoutMs });
    });
  }
}

/** True when a gRPC failure means the executor itself is gone or unreachable. */
export function isExecutorGone(err: unknown): boolean {
  const code = (err as ServiceError)?.code;
  return code === status.UNAVAILABLE || code === status.CANCELLED || code === status.DEADLINE_EXCEEDED;
}

/** Agents by executor id, created once and reused (one HTTP/2 connection each). */
export class AgentPool {
  private readonly agents = new Map<string, Agent>();

  get(executor: ExecutorHandle): Agent {
    let agent = this.agents.get(executor.id);
    if (!agent || agent.executor.address !== executor.address) {
      agent?.close();
      agent = new Agent(executor);
      this.agents.set(executor.id, agent);
    }
    return agent;
  }

  drop(executorId: string): void {
    this.agents.get(executorId)?.close();
    this.agents.delete(executorId);
  }

  closeAll(): void {
    for (const a of this.agents.values()) a.close();
    this.agents.clear();
  }
}
