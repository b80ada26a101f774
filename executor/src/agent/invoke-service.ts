import type { InvokeServer } from '@kiln/proto/executor/invoke';
import { invoke } from '../lambda/invoke.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Rpc } from './rpc.js';

/** The Invoke service: one Lambda-style invocation in a leased sandbox (lambda/invoke.ts). */
export function invokeService(rpc: Rpc, sandboxes: SandboxManager): InvokeServer {
  return {
    invoke: rpc.unary(async (req) => {
      const sandbox = sandboxes.get(req.sandboxId);
      const res = await invoke(sandbox, req);
      // A dead sandbox frees its slot now; the control plane drops its record when it sees sandboxAlive=false.
      // destroy() kills and removes directories; a failure there is logged, not the caller's answer.
      if (!res.sandboxAlive) {
        sandboxes.destroy(sandbox.id).catch((err: unknown) => process.stderr.write(`executor: destroying dead sandbox ${sandbox.id} failed: ${String(err)}\n`));
      }
      return res;
    }),
  };
}
