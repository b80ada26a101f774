import type { ProcessRequest, ProcessRunResponse } from '@kiln/proto/executor/process';
import type { Sandbox } from '../sandbox/sandbox.js';
import { CappedBuffer } from './output.js';
import { outOfMemoryMessage } from './process.js';
import { processEvent as event, type EventSink, type ProcessTable } from './registry.js';

/** Per-stream output cap when the request names none. */
export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
/** Wall-clock limit of run and stream when the request names none. */
export const DEFAULT_TIMEOUT_MS = 300_000;

function withDefaults(req: ProcessRequest): ProcessRequest {
  return { ...req, timeoutMs: req.timeoutMs || DEFAULT_TIMEOUT_MS, maxOutputBytes: req.maxOutputBytes || DEFAULT_MAX_OUTPUT_BYTES };
}

/**
 * Runs a command to completion. Output past the cap is read and dropped (the pipe keeps
 * draining, so the command is not blocked and memory stays at the cap) and flagged truncated.
 */
export async function runProcess(table: ProcessTable, sandbox: Sandbox, request: ProcessRequest): Promise<ProcessRunResponse> {
  const req = withDefaults(request);
  const proc = table.start(sandbox, req, false);
  const out = new CappedBuffer(req.maxOutputBytes);
  const err = new CappedBuffer(req.maxOutputBytes);
  proc.child.stdout?.on('data', (d: Buffer) => out.push(d));
  proc.child.stderr?.on('data', (d: Buffer) => err.push(d));
  const exit = await proc.exited;
  if (exit.outOfMemory) err.push(Buffer.from(outOfMemoryMessage(sandbox.spec.memoryMB)));
  return {
    exitCode: exit.exitCode,
    signal: exit.signal,
    stdout: out.bytes(),
    stderr: err.bytes(),
    durationMs: exit.durationMs,
    stdoutTruncated: out.truncated,
    stderrTruncated: err.truncated,
    timedOut: exit.timedOut,
    pid: proc.pid,
  };
}

/**
 * Runs a command and sends its output as it comes. A slow consumer pauses the pipes (the
 * command then blocks on write) instead of buffering; a cancelled call kills the command.
 */
export async function streamProcess(table: ProcessTable, sandbox: Sandbox, request: ProcessRequest, sink: EventSink): Promise<void> {
  const req = withDefaults(request);
  const proc = table.start(sandbox, req, false);
  let sent = 0;
  let truncated = false;
  const streams = [proc.child.stdout, proc.child.stderr];
  sink.onDrain(() => streams.forEach((s) => s?.resume()));
  sink.onCancel(() => proc.signal('SIGKILL'));
  const forward = (which: 'stdout' | 'stderr') => (d: Buffer) => {
    if (sent >= req.maxOutputBytes) {
      truncated = true;
      return;
    }
    const part = d.length > req.maxOutputBytes - sent ? d.subarray(0, req.maxOutputBytes - sent) : d;
    if (part.length < d.length) truncated = true;
    sent += part.length;
    if (!sink.write(event(proc.pid, { [which]: part }))) streams.forEach((s) => s?.pause());
  };
  proc.child.stdout?.on('data', forward('stdout'));
  proc.child.stderr?.on('data', forward('stderr'));
  sink.write(event(proc.pid, {}));
  const exit = await proc.exited;
  if (exit.outOfMemory) sink.write(event(proc.pid, { stderr: Buffer.from(outOfMemoryMessage(sandbox.spec.memoryMB)) }));
  sink.write(event(proc.pid, { exited: true, exitCode: exit.exitCode, signal: exit.signal, durationMs: exit.durationMs, timedOut: exit.timedOut, truncated }));
}
