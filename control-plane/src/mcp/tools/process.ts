import { z } from 'zod';
import { clip, ok } from '../results.js';
import { defineTool, sandboxArgs, sandboxIdOf, type ToolDef } from '../context.js';

const readRest = (stream: string) => (_shown: number, total: number) =>
  `The ${stream} has ${total} characters: rerun the command with its output redirected to a file (e.g. \`cmd > /workspace/out.txt 2>&1\`) and read it with file_read using offset.`;

const processRun = defineTool({
  name: 'process_run',
  scope: 'sessions',
  title: 'Run a command in a sandbox',
  description:
    'Runs a shell command in a Linux sandbox (no network unless its template allows it; /workspace is writable and persists between calls in the same sandbox) and returns its exit code, stdout and stderr. ' +
    '`command` is run by /bin/sh -c, so pipes, redirects and && work; pass `args` to run an executable directly without a shell. ' +
    'Long outputs are truncated; the note in the result says how to read the rest. With background: true it returns at once with the pid (stop it with process_kill).',
  inputSchema: {
    ...sandboxArgs,
    command: z.string().min(1).describe('Shell command line, e.g. "python3 main.py | head -n 20". With `args`, the executable to run instead.'),
    args: z.array(z.string()).optional().describe('Arguments for `command` when it is an executable; when given no shell is used.'),
    cwd: z.string().optional().describe('Working directory inside the sandbox (default /workspace).'),
    env: z.record(z.string()).optional().describe('Extra environment variables.'),
    stdin: z.string().optional().describe('Text written to the process\'s standard input, which is then closed.'),
    timeout_ms: z.number().int().min(1).max(3_600_000).optional().describe('Kill the process group after this many milliseconds (default 300000).'),
    background: z.boolean().optional().describe('Start the process and return its pid without waiting for it to finish.'),
  },
  async run(a, ctx) {
    const { id, created } = await ctx.sandbox(sandboxIdOf(a));
    const { record, agent } = await ctx.services.sessions.open(id, ctx.principal);
    const req = {
      command: a.args ? a.command : 'sh',
      args: a.args ?? ['-c', a.command],
      cwd: a.cwd ?? '',
      env: { ...record.env, ...a.env },
      stdin: Buffer.from(a.stdin ?? ''),
      timeoutMs: a.timeout_ms ?? 0,
      maxOutputBytes: 0,
    };
    if (a.background) {
      const p = await agent.start(req);
      return ok({ sandboxId: id, sandboxCreated: created, pid: p.pid, running: p.running }, `Started pid ${p.pid} in sandbox ${id}. Stop it with process_kill.`);
    }
    const r = await agent.run(req);
    const stdout = clip(Buffer.from(r.stdout).toString('utf8'), readRest('stdout'));
    const stderr = clip(Buffer.from(r.stderr).toString('utf8'), readRest('stderr'));
    const notes = [stdout.note, stderr.note, r.stdoutTruncated || r.stderrTruncated ? 'The sandbox kept only the first 1 MB of each stream; redirect output to a file to keep all of it.' : undefined, r.timedOut ? `Killed after timeout_ms; raise timeout_ms or run it with background: true.` : undefined].filter((n): n is string => n !== undefined);
    const structured = {
      sandboxId: id,
      sandboxCreated: created,
      pid: r.pid,
      exitCode: r.exitCode,
      signal: r.signal,
      stdout: stdout.text,
      stderr: stderr.text,
      durationMs: r.durationMs,
      timedOut: r.timedOut,
      truncated: stdout.truncated || stderr.truncated || r.stdoutTruncated || r.stderrTruncated,
      ...(notes.length ? { notes } : {}),
    };
    const head = `exit code ${r.exitCode}${r.signal ? ` (signal ${r.signal})` : ''} in ${Math.round(r.durationMs)} ms, sandbox ${id}${created ? ' (new)' : ''}`;
    const text = [head, stdout.text && `--- stdout ---\n${stdout.text}`, stderr.text && `--- stderr ---\n${stderr.text}`, ...notes].filter(Boolean).join('\n');
    return ok(structured, text);
  },
});

const processKill = defineTool({
  name: 'process_kill',
  scope: 'sessions',
  title: 'Signal a process in a sandbox',
  description: 'Sends a signal (default SIGTERM) to a process started with process_run background: true, and to its process group. Returns whether it is still running and its output so far.',
  inputSchema: {
    ...sandboxArgs,
    pid: z.number().int().min(1).describe('The pid returned by process_run.'),
    signal: z.enum(['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2']).optional().describe('Signal to send (default SIGTERM; SIGKILL cannot be caught).'),
  },
  annotations: { destructiveHint: true },
  async run(a, ctx) {
    const { id } = await ctx.sandbox(sandboxIdOf(a));
    const { agent } = await ctx.services.sessions.open(id, ctx.principal);
    const p = await agent.signal(a.pid, a.signal ?? 'SIGTERM');
    const stdout = clip(Buffer.from(p.stdout).toString('utf8'), readRest('stdout'));
    return ok(
      { sandboxId: id, pid: p.pid, running: p.running, exitCode: p.exitCode, signal: p.signal, stdout: stdout.text, stderr: clip(Buffer.from(p.stderr).toString('utf8'), readRest('stderr')).text },
      `Sent ${a.signal ?? 'SIGTERM'} to pid ${p.pid}: ${p.running ? 'still running' : `exited (code ${p.exitCode}${p.signal ? `, signal ${p.signal}` : ''})`}.`,
    );
  },
});

/** Tools that run and stop processes in a session's sandbox. */
export const processTools: ToolDef[] = [processRun, processKill];
