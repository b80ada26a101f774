import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { FilesClient } from '@kiln/proto/executor/files';
import { InterpreterClient } from '@kiln/proto/executor/interpreter';
import { InvokeClient, InvokeService, type InvokeRequest, type InvokeResponse, type InvokeStreamEvent } from '@kiln/proto/executor/invoke';
import { NfsClient, type NfsExportOptions, type SessionBindResponse } from '@kiln/proto/executor/nfs';
import { ProcessesClient } from '@kiln/proto/executor/process';
import { PtyClient } from '@kiln/proto/executor/pty';
import { SandboxesClient, type CreateSandboxRequest, type HealthResponse, type SandboxInfo, type SandboxUsage } from '@kiln/proto/executor/sandboxes';
import type { ExecutorHandle } from '../platforms/platform.js';
import { KilnError } from '../errors.js';
import { executorError } from './errors.js';
import { FileStreams } from './file-streams.js';
import { UnaryChannel } from './unary.js';

export { isExecutorGone } from './errors.js';

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The generated clients of an executor's services, on one HTTP/2 channel, and the call metadata. */
export interface AgentClients {
  sandboxes: InstanceType<typeof SandboxesClient>;
  processes: InstanceType<typeof ProcessesClient>;
  files: InstanceType<typeof FilesClient>;
  pty: InstanceType<typeof PtyClient>;
  nfs: InstanceType<typeof NfsClient>;
  /** InvokeStream only: unary Invoke, the hot path, has a channel of its own. */
  invoke: InstanceType<typeof InvokeClient>;
  interpreter: InstanceType<typeof InterpreterClient>;
  /** Carries the agent token. */
  metadata: Metadata;
}

/**
 * An executor's agent, with promise-returning calls that carry its token. Invoke, the hot
 * path, goes over a lean unary channel of its own (unary.ts); every other service over grpc-js,
 * all on one shared channel. Every call rejects with the control plane's errors, rebuilt from the
 * executor's error code in one table (errors.ts).
 */
export class Agent {
  private readonly clients: AgentClients;
  private readonly unary: UnaryChannel;
  /** Files.Read, Write and the tar streams: moved without grpc-js, on a connection of their own (file-streams.ts). */
  readonly fileStreams: FileStreams;

  constructor(readonly executor: ExecutorHandle) {
    const options = {
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      // HTTP/2's default 64 KB window makes a download a round trip per 64 KB, each waiting for
      // both processes to be scheduled; 8 MB lets a file stream (bounded: the window is the most
      // the executor can have in flight to this process per connection).
      'grpc-node.flow_control_window': 8 * 1024 * 1024,
    };
    const sandboxes = new SandboxesClient(executor.address, credentials.createInsecure(), options);
    // The other clients share the first one's channel: one connection per executor.
    const channel = { channelOverride: sandboxes.getChannel() };
    const metadata = new Metadata();
    const auth: Record<string, string> = executor.token ? { authorization: `Bearer ${executor.token}` } : {};
    for (const [name, value] of Object.entries(auth)) metadata.set(name, value);
    this.clients = {
      sandboxes,
      processes: new ProcessesClient(executor.address, credentials.createInsecure(), channel),
      files: new FilesClient(executor.address, credentials.createInsecure(), channel),
      pty: new PtyClient(executor.address, credentials.createInsecure(), channel),
      nfs: new NfsClient(executor.address, credentials.createInsecure(), channel),
      invoke: new InvokeClient(executor.address, credentials.createInsecure(), channel),
      interpreter: new InterpreterClient(executor.address, credentials.createInsecure(), channel),
      metadata,
    };
    this.unary = new UnaryChannel(executor.address, auth, MAX_MESSAGE_BYTES);
    this.fileStreams = new FileStreams(executor.address, auth, MAX_MESSAGE_BYTES);
  }

  health(timeoutMs = 2000): Promise<HealthResponse> {
    return this.call((cb, opts) => this.clients.sandboxes.health({}, this.clients.metadata, opts, cb), timeoutMs);
  }

  /** `prestartContexts` and `volumes` may be left out (none). */
  createSandbox(req: Omit<CreateSandboxRequest, 'prestartContexts' | 'volumes'> & Partial<Pick<CreateSandboxRequest, 'prestartContexts' | 'volumes'>>, timeoutMs = 15_000): Promise<SandboxInfo> {
    const full: CreateSandboxRequest = { prestartContexts: [], volumes: [], ...req };
    return this.call((cb, opts) => this.clients.sandboxes.create(full, this.clients.metadata, opts, cb), timeoutMs);
  }

  destroySandbox(sandboxId: string, timeoutMs = 10_000): Promise<boolean> {
    return this.call<{ existed: boolean }>((cb, opts) => this.clients.sandboxes.destroy({ sandboxId }, this.clients.metadata, opts, cb), timeoutMs).then((r) => r.existed);
  }

  listSandboxes(timeoutMs = 5000): Promise<SandboxInfo[]> {
    return this.call<{ sandboxes: SandboxInfo[] }>((cb, opts) => this.clients.sandboxes.list({}, this.clients.metadata, opts, cb), timeoutMs).then((r) => r.sandboxes);
  }

  /** Freezes a sandbox's processes (Sandboxes.Pause); a 1 GB sandbox can take seconds under load. */
  pauseSandbox(sandboxId: string, timeoutMs = 30_000): Promise<SandboxUsage> {
    return this.call((cb, opts) => this.clients.sandboxes.pause({ sandboxId }, this.clients.metadata, opts, cb), timeoutMs);
  }

  resumeSandbox(sandboxId: string, timeoutMs = 30_000): Promise<SandboxUsage> {
    return this.call((cb, opts) => this.clients.sandboxes.resume({ sandboxId }, this.clients.metadata, opts, cb), timeoutMs);
  }

  /** What a sandbox's cgroup has used (Sandboxes.Usage: `…/usage` and `…/metrics`); works paused. */
  sandboxUsage(sandboxId: string, timeoutMs = 5000): Promise<SandboxUsage> {
    return this.call((cb, opts) => this.clients.sandboxes.usage({ sandboxId }, this.clients.metadata, opts, cb), timeoutMs);
  }

  invoke(req: InvokeRequest, timeoutMs: number): Promise<InvokeResponse> {
    return this.unary.call(InvokeService.invoke, req, timeoutMs).catch((err: unknown) => Promise.reject(executorError(err, this.executor.id)));
  }

  /**
   * InvokeStream: `onChunk` gets the body's chunks as the executor sends them (`contentType` on
   * the first), and the promise the outcome, whose payload is empty.
   */
  invokeStream(req: InvokeRequest, timeoutMs: number, onChunk: (data: Buffer, contentType: string) => void): Promise<InvokeResponse> {
    return new Promise<InvokeResponse>((resolve, reject) => {
      const call = this.clients.invoke.invokeStream(req, this.clients.metadata, { deadline: Date.now() + timeoutMs });
      let done: InvokeResponse | undefined;
      call.on('data', (event: InvokeStreamEvent) => {
        if (event.done) done = event.done;
        else onChunk(Buffer.from(event.chunk), event.contentType);
      });
      call.on('error', (err: ServiceError) => reject(executorError(err, this.executor.id)));
      call.on('end', () => (done ? resolve(done) : reject(new KilnError('ExecutorError', 502, `executor ${this.executor.id} ended InvokeStream without an outcome`, { executorId: this.executor.id }))));
    });
  }

  /** Exports a session's sandbox /workspace over the executor's NFS server (Nfs.Bind). */
  bindSession(sessionId: string, sandboxId: string, nfs: NfsExportOptions, timeoutMs = 10_000): Promise<SessionBindResponse> {
    return this.call((cb, opts) => this.clients.nfs.bind({ sessionId, sandboxId, nfs }, this.clients.metadata, opts, cb), timeoutMs);
  }

  /** Forgets a session's export (Nfs.Unbind); true when it was bound. */
  unbindSession(sessionId: string, timeoutMs = 5_000): Promise<boolean> {
    return this.call<{ existed: boolean }>((cb, opts) => this.clients.nfs.unbind({ sessionId }, this.clients.metadata, opts, cb), timeoutMs).then((r) => r.existed);
  }

  /** The generated clients and the call metadata (with the token), for session-client.ts. */
  get grpc(): AgentClients {
    return this.clients;
  }

  close(): void {
    // Closing one client closes the channel they share.
    this.clients.sandboxes.close();
    this.unary.close();
    this.fileStreams.close();
  }

  private call<T>(fn: (cb: (err: ServiceError | null, res: T) => void, opts: { deadline: number }) => void, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      fn((err, res) => (err ? reject(executorError(err, this.executor.id)) : resolve(res)), { deadline: Date.now() + timeoutMs });
    });
  }
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
