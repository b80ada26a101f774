import type { ServerWritableStream } from '@grpc/grpc-js';
import type { ProcessesServer, ProcessEvent } from '@kiln/proto/executor/process';
import type { EventSink, ProcessTable } from '../process/registry.js';
import { runProcess, streamProcess } from '../process/run.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Rpc } from './rpc.js';

/** A server stream as the process table's event sink. */
function sinkOf(call: ServerWritableStream<unknown, ProcessEvent>): EventSink {
  return {
    write: (event: ProcessEvent) => call.write(event),
    onDrain: (fn) => call.on('drain', fn),
    onCancel: (fn) => call.on('cancelled', fn),
  };
}

const selector = (s: { pid: number; tag: string } | undefined) => ({ pid: s?.pid ?? 0, tag: s?.tag ?? '' });

/** The Processes service: commands inside a session's sandbox, in the foreground or background. */
export function processesService(rpc: Rpc, sandboxes: SandboxManager, processes: ProcessTable): ProcessesServer {
  return {
    run: rpc.unary((req) => runProcess(processes, sandboxes.get(req.sandboxId), req)),
    stream: rpc.serverStream(async (call) => {
      const sandbox = sandboxes.get(call.request.sandboxId);
      await streamProcess(processes, sandbox, call.request, sinkOf(call));
    }),
    start: rpc.unary((req) => {
      const sandbox = sandboxes.get(req.sandboxId);
      const proc = processes.start(sandbox, req, true);
      return processes.list(sandbox).find((p) => p.pid === proc.pid) ?? { pid: proc.pid, command: req.command, args: req.args, running: true, exitCode: 0, signal: '', startedAtMs: proc.startedAt, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), tag: req.tag, pty: false, env: req.env, cwd: req.cwd };
    }),
    list: rpc.unary((req) => ({ processes: processes.list(sandboxes.get(req.sandboxId)) })),
    signal: rpc.unary((req) => processes.signal(sandboxes.get(req.sandboxId), req, req.signal)),
    spawn: rpc.serverStream((call) => processes.spawn(sandboxes.get(call.request.sandboxId), call.request, sinkOf(call))),
    attach: rpc.serverStream((call) => processes.attach(sandboxes.get(call.request.sandboxId), call.request, sinkOf(call))),
    input: rpc.unary((req) => processes.input(sandboxes.get(req.process?.sandboxId ?? ''), selector(req.process), req.data, req.closeStdin)),
    resize: rpc.unary((req) => processes.resize(sandboxes.get(req.process?.sandboxId ?? ''), selector(req.process), req.cols, req.rows)),
  };
}
