import type { CodeEvent, InterpreterServer } from '@kiln/proto/executor/interpreter';
import type { ContextTable } from '../interpreter/contexts.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Rpc } from './rpc.js';

/** The Interpreter service: code contexts in a session's sandbox (interpreter/contexts.ts). */
export function interpreterService(rpc: Rpc, sandboxes: SandboxManager, contexts: ContextTable): InterpreterServer {
  return {
    createContext: rpc.unary((req) => contexts.create(sandboxes.get(req.sandboxId), req.language, req.cwd, req.env, req.defaultContext)),
    listContexts: rpc.unary((req) => ({ contexts: contexts.list(sandboxes.get(req.sandboxId)) })),
    deleteContext: rpc.unary(async (req) => ({ existed: await contexts.delete(sandboxes.get(req.sandboxId), req.contextId) })),
    restartContext: rpc.unary((req) => contexts.restart(sandboxes.get(req.sandboxId), req.contextId)),
    interrupt: rpc.unary((req) => contexts.interrupt(sandboxes.get(req.sandboxId), req.contextId)),
    execute: rpc.serverStream(async (call) => {
      const { sandboxId, contextId, code, timeoutMs } = call.request;
      // The caller hanging up interrupts the execution, as a timeout does.
      const hangup = new AbortController();
      call.on('cancelled', () => hangup.abort());
      await contexts.execute(sandboxes.get(sandboxId), contextId, code, timeoutMs, (event: CodeEvent) => {
        if (!call.cancelled) call.write(event);
      }, hangup.signal);
    }),
  };
}
