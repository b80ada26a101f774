// Test/bench harness for the in-sandbox runners: spawns a runner with a socketpair on
// fd 3, either directly or under bubblewrap with the sandbox layout the executor
// uses, and speaks the executor<->runner protocol (see ../README.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Socket } from 'node:net';

export const RUNTIME_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES_DIR = join(RUNTIME_DIR, 'test', 'fixtures');

export type Runtime = 'nodejs' | 'python' | 'provided';

/** Node flags the executor should use for the Node-based runners (see README). */
export const NODE_FLAGS = ['--v8-pool-size=1'];
/** Python flags: -I isolated (ignore PYTHON* env, no user site, no script dir on sys.path). */
export const PYTHON_FLAGS = ['-I'];

export function runnerCommand(runtime: Runtime, runtimeRoot: string, flags?: string[]): string[] {
  switch (runtime) {
    case 'nodejs':
      return ['/usr/bin/node', ...(flags ?? NODE_FLAGS), join(runtimeRoot, 'node', 'runner.cjs')];
    case 'provided':
      return ['/usr/bin/node', ...(flags ?? NODE_FLAGS), join(runtimeRoot, 'provided', 'runner.cjs')];
    case 'python':
      return ['/usr/bin/python3', ...(flags ?? PYTHON_FLAGS), join(runtimeRoot, 'python', 'runner.py')];
  }
}

export interface Msg {
  type: string;
  [k: string]: any;
}

export interface StartOptions {
  runtime: Runtime;
  /** Host directory holding the function code (mounted read-only at /var/task in a sandbox). */
  taskDir: string;
  sandbox: boolean;
  /** Extra environment for the runner process itself. */
  env?: Record<string, string>;
  /** Interpreter flags instead of NODE_FLAGS / PYTHON_FLAGS. */
  flags?: string[];
}

let scratchRoot: string | undefined;
function scratch(prefix: string): string {
  scratchRoot ??= mkdtempSync(join(tmpdir(), 'kiln-runtime-test-'));
  return mkdtempSync(join(scratchRoot, prefix));
}

export function cleanupScratch(): void {
  if (scratchRoot) rmSync(scratchRoot, { recursive: true, force: true });
  scratchRoot = undefined;
}

/** Writes `files` (path -> content) into a fresh task directory and returns it. */
export function makeTask(files: Record<string, string | Buffer>, modes: Record<string, number> = {}): string {
  const dir = scratch('task-');
  for (const [rel, content] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content);
    if (modes[rel] !== undefined) chmodSync(p, modes[rel]!);
  }
  return dir;
}

/** Minimal /etc for the sandbox: an identity for uid 1000 and localhost. */
function sandboxEtc(): string {
  const dir = scratch('etc-');
  writeFileSync(join(dir, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nsbx_user1051:x:1000:1000::/tmp:/sbin/nologin\n');
  writeFileSync(join(dir, 'group'), 'root:x:0:\nsbx_user1051:x:1000:\n');
  writeFileSync(join(dir, 'hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost\n');
  return dir;
}

export function bwrapArgs(taskDir: string, workspace: string, etc: string): string[] {
  return [
    '--ro-bind',
    '/usr',
    '/usr',
    '--symlink',
    'usr/lib',
    '/lib',
    '--symlink',
    'usr/lib64',
    '/lib64',
    '--symlink',
    'usr/bin',
    '/bin',
    '--symlink',
    'usr/sbin',
    '/sbin',
    '--ro-bind',
    etc,
    '/etc',
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--tmpfs',
    '/tmp',
    '--bind',
    workspace,
    '/workspace',
    '--ro-bind',
    taskDir,
    '/var/task',
    '--ro-bind',
    RUNTIME_DIR,
    '/opt/kiln/runtime',
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--uid',
    '1000',
    '--gid',
    '1000',
    '--cap-drop',
    'ALL',
    '--chdir',
    '/tmp',
  ];
}

export class Runner {
  readonly messages: Msg[] = [];
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  ready!: Msg;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited = false;
  private waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  private cursor = 0;
  private chan: Socket;
  readonly taskRoot: string;
  readonly spawnedAt: bigint;

  private constructor(
    readonly child: ChildProcess,
    readonly opts: StartOptions,
  ) {
    this.spawnedAt = process.hrtime.bigint();
    this.taskRoot = opts.sandbox ? '/var/task' : opts.taskDir;
    this.chan = child.stdio[3] as Socket;
    this.chan.setEncoding('utf8');
    // Split lines scanning only the new chunk: `buf += d; buf.indexOf('\n')` re-flattens a
    // growing string on every chunk, which is quadratic for multi-megabyte messages.
    let pending: string[] = [];
    this.chan.on('data', (chunk: string) => {
      let start = 0;
      let i: number;
      while ((i = chunk.indexOf('\n', start)) !== -1) {
        pending.push(chunk.slice(start, i));
        const line = pending.join('');
        pending = [];
        start = i + 1;
        if (!line) continue;
        const msg = JSON.parse(line) as Msg;
        msg._at = process.hrtime.bigint();
        this.messages.push(msg);
        const w = this.waiters.findIndex((x) => x.pred(msg));
        if (w !== -1) this.waiters.splice(w, 1)[0]!.resolve(msg);
      }
      if (start < chunk.length) pending.push(chunk.slice(start));
    });
    this.chan.on('error', () => {});
    child.stdout!.setEncoding('utf8').on('data', (d: string) => this.stdout.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => this.stderr.push(d));
    this.exit = new Promise((res) =>
      child.on('exit', (code, signal) => {
        this.exited = true;
        res({ code, signal });
      }),
    );
  }

  static async start(opts: StartOptions): Promise<Runner> {
    const baseEnv: Record<string, string> = { PATH: '/usr/local/bin:/usr/bin:/bin', HOME: '/tmp', ...opts.env };
    let child: ChildProcess;
    if (opts.sandbox) {
      const ws = scratch('ws-');
      const args = [...bwrapArgs(opts.taskDir, ws, sandboxEtc()), '--', ...runnerCommand(opts.runtime, '/opt/kiln/runtime', opts.flags)];
      child = spawn('bwrap', args, { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], env: baseEnv });
    } else {
      const [cmd, ...args] = runnerCommand(opts.runtime, RUNTIME_DIR, opts.flags);
      child = spawn(cmd!, args, {
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        // Outside a sandbox several runners share the host loopback: any free port.
        env: { KILN_RUNTIME_API_ADDR: '127.0.0.1:0', ...baseEnv },
        cwd: tmpdir(),
      });
    }
    const r = new Runner(child, opts);
    r.ready = await r.next((m) => m.type === 'ready', 10_000);
    return r;
  }

  send(msg: object): void {
    this.chan.write(JSON.stringify(msg) + '\n');
  }

  /** Next message (after those already consumed) matching `pred`. */
  next(pred: (m: Msg) => boolean = () => true, timeoutMs = 10_000): Promise<Msg> {
    for (let i = this.cursor; i < this.messages.length; i++) {
      const m = this.messages[i]!;
      if (pred(m)) {
        this.cursor = i + 1;
        return Promise.resolve(m);
      }
    }
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(
          new Error(
            `timed out waiting for a message; got ${JSON.stringify(this.messages.slice(-5), (_k, v) => (typeof v === 'bigint' ? String(v) : v))}\nstderr: ${this.stderr.join('')}`,
          ),
        );
      }, timeoutMs);
      const done = (m: Msg) => {
        clearTimeout(t);
        this.cursor = this.messages.indexOf(m) + 1;
        resolve(m);
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  /** Any message so far or to come (ignores the cursor) matching `pred`. */
  async find(pred: (m: Msg) => boolean, timeoutMs = 10_000): Promise<Msg> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.messages.find(pred);
      if (m) return m;
      if (Date.now() > deadline) throw new Error('timed out waiting for a message');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async load(handler: string, extra: { env?: Record<string, string>; function?: object } = {}): Promise<Msg> {
    this.send({
      type: 'load',
      handler,
      taskRoot: this.taskRoot,
      env: extra.env ?? {},
      function: {
        functionName: 'test-fn',
        functionVersion: '$LATEST',
        memoryLimitInMB: 128,
        invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:test-fn',
        logGroupName: '/aws/lambda/test-fn',
        logStreamName: '2026/11/23/[$LATEST]abcdef0123456789',
        ...extra.function,
      },
    });
    return this.next((m) => m.type === 'loaded' || m.type === 'loadError', 15_000);
  }

  private seq = 0;
  /** Sends an invoke and resolves with its result plus the log messages of that id. */
  async invoke(
    event: unknown,
    opts: { id?: string; timeoutMs?: number; deadlineMs?: number; clientContext?: unknown; identity?: unknown } = {},
  ): Promise<{ result: Msg; logs: Msg[]; text: string }> {
    const id = opts.id ?? `req-${process.pid}-${++this.seq}`;
    const start = this.messages.length;
    this.send({
      type: 'invoke',
      id,
      event,
      deadlineMs: opts.deadlineMs ?? Date.now() + (opts.timeoutMs ?? 10_000),
      clientContext: opts.clientContext ?? null,
      identity: opts.identity ?? null,
    });
    const result = await this.next((m) => m.type === 'result' && m.id === id, opts.timeoutMs ?? 10_000);
    const logs = this.messages.slice(start).filter((m) => m.type === 'log' && m.id === id);
    return { result, logs, text: logs.map((l) => l.data).join('') };
  }

  async shutdown(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exited) {
      try {
        this.send({ type: 'shutdown' });
      } catch {
        /* channel already closed */
      }
    }
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    const r = await this.exit;
    clearTimeout(t);
    return r;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** Host pid of the runner process itself (under bwrap: the descendant with that ns pid). */
  hostPid(): number {
    const root = this.child.pid!;
    if (!this.opts.sandbox) return root;
    const target = Number(this.ready.pid);
    const stack = [root];
    while (stack.length) {
      const pid = stack.pop()!;
      const status = safeRead(`/proc/${pid}/status`);
      const nspid = /NSpid:\s+([\d\s]+)/.exec(status)?.[1]?.trim().split(/\s+/);
      if (pid !== root && nspid && Number(nspid[nspid.length - 1]) === target) return pid;
      for (const tid of safeReaddir(`/proc/${pid}/task`)) {
        for (const c of safeRead(`/proc/${pid}/task/${tid}/children`).split(/\s+/).filter(Boolean)) stack.push(Number(c));
      }
    }
    throw new Error('runner process not found');
  }

  /** Host pids of every process below the runner (e.g. a bootstrap and its children). */
  descendants(): number[] {
    const out: number[] = [];
    const stack = [this.hostPid()];
    while (stack.length) {
      const pid = stack.pop()!;
      for (const tid of safeReaddir(`/proc/${pid}/task`)) {
        for (const c of safeRead(`/proc/${pid}/task/${tid}/children`).split(/\s+/).filter(Boolean)) {
          out.push(Number(c));
          stack.push(Number(c));
        }
      }
    }
    return out;
  }

  /** Memory of the runner process in kB (from /proc/PID/smaps_rollup). */
  memory(): { rssKb: number; pssKb: number; anonKb: number; fileKb: number } {
    const s = safeRead(`/proc/${this.hostPid()}/smaps_rollup`);
    const g = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { rssKb: g('Rss'), pssKb: g('Pss'), anonKb: g('Anonymous'), fileKb: g('Rss') - g('Anonymous') };
  }
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}
function safeReaddir(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export const MODES = [
  { name: 'direct', sandbox: false },
  { name: 'bwrap', sandbox: true },
] as const;

export const bwrapAvailable = existsSync('/usr/bin/bwrap');

/** Convenience: start a runner, load a handler, and return both. */
export async function startLoaded(
  runtime: Runtime,
  taskDir: string,
  handler: string,
  sandbox: boolean,
  extra: { env?: Record<string, string>; function?: object; flags?: string[] } = {},
): Promise<{ runner: Runner; loaded: Msg }> {
  const runner = await Runner.start({ runtime, taskDir, sandbox, flags: extra.flags });
  const loaded = await runner.load(handler, extra);
  return { runner, loaded };
}
