import type { InvokeResponse, InvokeServer } from '@kiln/proto/executor/invoke';
import { invoke } from '../lambda/invoke.js';
import { invokeStreaming } from '../lambda/stream.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Rpc } from './rpc.js';

/** The Invoke service: one Lambda-style invocation in a leased sandbox (lambda/invoke.ts, lambda/stream.ts). */
export function invokeService(rpc: Rpc, sandboxes: SandboxManager): InvokeServer {
  return {
    invoke: rpc.unary(async (req) => {
      const sandbox = sandboxes.get(req.sandboxId);
      return forgetIfDead(sandboxes, sandbox.id, await invoke(sandbox, req));
    }),
    invokeStream: rpc.serverStream(async (call) => {
      const sandbox = sandboxes.get(call.request.sandboxId);
      // Chunks are written as they come; a slow reader's are held by grpc-js, bounded by MAX_STREAMED_BYTES.
      const res = await invokeStreaming(sandbox, call.request, (event) => void call.write(event));
      call.write({ chunk: Buffer.alloc(0), contentType: '', done: forgetIfDead(sandboxes, sandbox.id, res) });
    }),
  };
}

/**
 * A dead sandbox frees its slot now; the control plane drops its record when it sees sandboxAlive=false.
 * destroy() kills and removes directories; a failure there is logged, not the caller's answer.
 */
function forgetIfDead(sandboxes: SandboxManager, id: string, res: InvokeResponse): InvokeResponse {
  if (!res.sandboxAlive) {
    sandboxes.destroy(id).catch((err: unknown) => process.stderr.write(`executor: destroying dead sandbox ${id} failed: ${String(err)}\n`));
  }
  return res;
}
