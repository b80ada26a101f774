import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ProcessEvent as KilnEvent, ProcessInfo as KilnInfo } from '@kiln/proto/executor/process';
import { Process, Signal, type ProcessEventSchema, type ProcessSelector } from '@kiln/proto/e2b/process/process_pb';
import { ValidationError } from '../../errors.js';
import type { SandboxOpener } from './access.js';
import { E2B_HOME, processCwd } from './paths.js';
import { keepaliveMs, streaming, unary, withKeepalive } from './streams.js';

type Event = MessageInitShape<typeof ProcessEventSchema>;

/** pid and tag as Kiln's executor takes them (a tag when pid is 0). */
function selector(s: ProcessSelector | undefined): [number, string] {
  if (s?.selector.case === 'pid') return [s.selector.value, ''];
  if (s?.selector.case === 'tag' && s.selector.value) return [0, s.selector.value];
  throw new ValidationError('process must name a pid or a tag');
}

const SIGNALS: Partial<Record<Signal, string>> = { [Signal.SIGKILL]: 'SIGKILL', [Signal.SIGTERM]: 'SIGTERM' };

/** Kiln's process events as envd's: start (the pid), data, then end. */
function toE2b(e: KilnEvent, first: boolean): Event | undefined {
  if (first && !e.exited) return { event: { case: 'start', value: { pid: e.pid } } };
  if (e.stdout.length) return { event: { case: 'data', value: { output: { case: 'stdout', value: e.stdout } } } };
  if (e.stderr.length) return { event: { case: 'data', value: { output: { case: 'stderr', value: e.stderr } } } };
  if (e.pty.length) return { event: { case: 'data', value: { output: { case: 'pty', value: e.pty } } } };
  if (e.exited) {
    // envd's shape: a signal is exit code -1 and "signal: <name>"; an error names any non-zero end.
    const status = e.signal ? `signal: ${e.signal.replace(/^SIG/, '').toLowerCase()}` : `exit status ${e.exitCode}`;
    return { event: { case: 'end', value: { exitCode: e.signal ? -1 : e.exitCode, exited: true, status, ...(e.signal || e.exitCode !== 0 ? { error: status } : {}) } } };
  }
  return undefined;
}

async function* events(source: AsyncGenerator<KilnEvent>, ctx: HandlerContext): AsyncGenerator<{ event: Event }> {
  let first = true;
  const keepalive = (): { event: Event } => ({ event: { event: { case: 'keepalive', value: {} } } });
  for await (const e of withKeepalive(source, keepaliveMs(ctx), keepalive)) {
    if ('event' in e) {
      yield e;
      continue;
    }
    const out = toE2b(e, first);
    first = false;
    if (out) yield { event: out };
    if (e.exited) return;
  }
}

function info(p: KilnInfo) {
  return { pid: p.pid, ...(p.tag ? { tag: p.tag } : {}), config: { cmd: p.command, args: p.args, envs: p.env, ...(p.cwd ? { cwd: p.cwd } : {}) } };
}

/**
 * envd's `process.Process` over a Kiln session: every process is a background process of the
 * session (listed, reattachable, by pid or tag). Start keeps it running when the client goes,
 * as envd does; kill it with SendSignal.
 */
export function e2bProcessService(opener: SandboxOpener): ServiceImpl<typeof Process> {
  const open = (ctx: HandlerContext) => opener((n) => ctx.requestHeader.get(n));
  return {
    list: unary(async (_req, ctx) => {
      const { agent } = await open(ctx);
      return { processes: (await agent.listProcesses()).filter((p) => p.running).map(info) };
    }),
    start: streaming(async function* (req, ctx) {
      const { record, agent } = await open(ctx);
      const cfg = req.process;
      if (!cfg?.cmd) throw new ValidationError('process.cmd is required');
      const size = req.pty?.size;
      if (req.pty && !(size?.cols && size.rows)) throw new ValidationError('pty.size needs cols and rows above 0');
      const cwd = processCwd(cfg.cwd);
      const source = agent.spawn({
        command: cfg.cmd,
        args: cfg.args,
        cwd,
        // PWD: shells keep the logical name (/home/user) instead of the link's target.
        env: { HOME: E2B_HOME, PWD: cwd, ...record.env, ...cfg.envs },
        tag: req.tag ?? '',
        keepStdin: req.stdin ?? false,
        ...(size ? { ptyCols: size.cols, ptyRows: size.rows } : {}),
      });
      yield* events(source, ctx);
    }),
    connect: streaming(async function* (req, ctx) {
      const { agent } = await open(ctx);
      yield* events(agent.attach(...selector(req.process)), ctx);
    }),
    update: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      const size = req.pty?.size;
      if (!size?.cols || !size.rows) throw new ValidationError('pty.size needs cols and rows above 0');
      await agent.resize(...selector(req.process), size.cols, size.rows);
      return {};
    }),
    streamInput: unary(async (reqs, ctx) => {
      const { agent } = await open(ctx);
      let target: [number, string] | undefined;
      for await (const r of reqs) {
        if (r.event.case === 'start') target = selector(r.event.value.process);
        else if (r.event.case === 'data') {
          if (!target) throw new ValidationError('the first message of StreamInput must select the process (start)');
          await agent.input(...target, r.event.value.input?.input.value ?? new Uint8Array());
        }
      }
      return {};
    }),
    sendInput: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      await agent.input(...selector(req.process), req.input?.input.value ?? new Uint8Array());
      return {};
    }),
    sendSignal: unary(async (req, ctx) => {
      const signal = SIGNALS[req.signal];
      if (!signal) throw new ValidationError(`signal must be SIGNAL_SIGKILL or SIGNAL_SIGTERM; got ${req.signal}`);
      const { agent } = await open(ctx);
      const [pid, tag] = selector(req.process);
      await agent.signal(pid, signal, tag);
      return {};
    }),
    closeStdin: unary(async (req, ctx) => {
      const { agent } = await open(ctx);
      await agent.input(...selector(req.process), new Uint8Array(), true);
      return {};
    }),
  };
}
