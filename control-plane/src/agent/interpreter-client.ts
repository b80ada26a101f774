import type { ServiceError } from '@grpc/grpc-js';
import type { CodeEvent, ContextInfo } from '@kiln/proto/executor/interpreter';
import type { Agent } from './client.js';
import { sessionRpcError } from './session-client.js';

/** The Interpreter RPCs (code contexts) of one session's sandbox, as promises and an async iterable. */
export class InterpreterAgent {
  constructor(
    private readonly agent: Agent,
    readonly sandboxId: string,
  ) {}

  private unary<T>(fn: (cb: (err: ServiceError | null, res: T) => void, deadline: number) => void, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      fn((err, res) => (err ? reject(sessionRpcError(err, this.agent.executor.id)) : resolve(res)), Date.now() + timeoutMs);
    });
  }

  /** Kernels take a few seconds to start (a Jupyter kernel ~1-2 s, more on a loaded host). */
  /** With `asDefault`, the sandbox's default context of the language (made if it has none). */
  createContext(language: string, cwd: string, env: Record<string, string>, asDefault = false): Promise<ContextInfo> {
    const { interpreter, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => interpreter.createContext({ sandboxId: this.sandboxId, language, cwd, env, defaultContext: asDefault }, metadata, { deadline }, cb), 90_000);
  }

  listContexts(): Promise<ContextInfo[]> {
    const { interpreter, metadata } = this.agent.grpc;
    return this.unary<{ contexts: ContextInfo[] }>((cb, deadline) => interpreter.listContexts({ sandboxId: this.sandboxId }, metadata, { deadline }, cb), 10_000).then((r) => r.contexts);
  }

  deleteContext(contextId: string): Promise<boolean> {
    const { interpreter, metadata } = this.agent.grpc;
    return this.unary<{ existed: boolean }>((cb, deadline) => interpreter.deleteContext({ sandboxId: this.sandboxId, contextId }, metadata, { deadline }, cb), 30_000).then((r) => r.existed);
  }

  restartContext(contextId: string): Promise<ContextInfo> {
    const { interpreter, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => interpreter.restartContext({ sandboxId: this.sandboxId, contextId }, metadata, { deadline }, cb), 90_000);
  }

  interrupt(contextId: string): Promise<ContextInfo> {
    const { interpreter, metadata } = this.agent.grpc;
    return this.unary((cb, deadline) => interpreter.interrupt({ sandboxId: this.sandboxId, contextId }, metadata, { deadline }, cb), 10_000);
  }

  /** The execution's events; returning early or `cancel` (the client hung up) cancels the call, which interrupts it. */
  async *execute(contextId: string, code: string, timeoutMs: number, cancel?: AbortSignal): AsyncGenerator<CodeEvent> {
    const { interpreter, metadata } = this.agent.grpc;
    const call = interpreter.execute({ sandboxId: this.sandboxId, contextId, code, timeoutMs }, metadata);
    // A generator waiting for the next message cannot be returned from outside; the signal cancels the call under it.
    cancel?.addEventListener('abort', () => call.cancel());
    try {
      for await (const msg of call) yield msg as CodeEvent;
    } catch (err) {
      throw sessionRpcError(err, this.agent.executor.id);
    } finally {
      call.cancel();
    }
  }
}
