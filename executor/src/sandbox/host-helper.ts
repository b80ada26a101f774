import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { TOOL_ENV } from './mounts.js';

/**
 * A small perl process, one per executor, that does the host-side work of a boot for it (mount
 * a devpts instance in a sandbox, copy and mount a workspace image): each request runs in a
 * child it forks.
 *
 * Why not a spawn per job from Node: libuv forks the whole executor, and copying its page tables
 * blocks the event loop for 5 to 10 ms per spawn (at 60 to 80 MB of RSS), which every request
 * in flight on the executor waits for, on top of an exec of perl or sh. The helper is a few MB,
 * so its fork costs a fraction of a millisecond, and nothing the executor does waits for it.
 * Its children are single-threaded and have not called execve, which the devpts job needs
 * (devpts.ts says why).
 *
 * perl-base is Essential in Debian, so every host and image has it. The helper runs with PATH
 * only (never the executor's environment, which holds its token) and exits when its stdin
 * closes, so it goes with the executor even on SIGKILL. It does not keep the executor's event
 * loop alive by itself (a test process ends without closing it).
 *
 * Protocol: one request per line, `id\top\targ...` (fields never hold a tab or a newline:
 * {@link HostHelper.run} refuses them); one answer per line from the child, `id\tok` or
 * `id\terr\tmessage`, written with one syswrite (shorter than PIPE_BUF, so answers of
 * children never interleave).
 */

/** A job the helper can run: the body of a perl sub that gets the request's fields in @_ and dies on failure. */
export type HelperJobs = Record<string, string>;

export class HostHelperError extends Error {
  constructor(
    readonly op: string,
    message: string,
  ) {
    super(`${op}: ${message}`);
    this.name = 'HostHelperError';
  }
}

const FIELD = /^[^\t\n]*$/;
const JOB_NAME = /^[a-z_]+$/;

/**
 * What else a helper runs: `prelude`, perl defined before the jobs (subs they share); `inline`,
 * jobs run in the helper itself, not a child, for state that must live as long as the helper
 * (they get `%held`, a hash whose values it keeps open). They must not block: the helper answers
 * nothing else meanwhile.
 */
export interface HelperExtras {
  prelude?: string;
  inline?: HelperJobs;
}

function script(jobs: HelperJobs, extras: HelperExtras): string {
  const subs = (table: string, of: HelperJobs): string =>
    Object.entries(of)
      .map(([name, body]) => `$${table}{${name}} = sub {\n${body}\n};`)
      .join('\n');
  return String.raw`
use strict;
use POSIX ();
$SIG{CHLD} = 'IGNORE';  # children answer for themselves; the kernel reaps them
my (%jobs, %inline, %held);
${extras.prelude ?? ''}
${subs('jobs', jobs)}
${subs('inline', extras.inline ?? {})}
sub answer { syswrite(STDOUT, join("\t", @_) . "\n"); }
while (my $line = <STDIN>) {
  chomp $line;
  my ($id, $op, @args) = split(/\t/, $line, -1);
  if (my $now = $inline{$op}) {
    my $ok = eval { $now->(@args); 1 };
    my $why = $@ || 'failed';
    $why =~ s/[\t\n]+/ /g; $why =~ s/\s+$//;
    answer($id, $ok ? 'ok' : ('err', $why));
    next;
  }
  my $pid = fork();
  if (!defined $pid) { answer($id, 'err', "fork: $!"); next; }
  next if $pid;
  # The child: default signal handling for whatever it runs, one answer, no END blocks or buffers.
  # It closes its copies of what the helper holds: a lock the helper drops is then not kept
  # by a child (closing a copy does not drop a flock; the helper's own handle keeps it).
  $SIG{CHLD} = 'DEFAULT';
  %held = ();
  my $job = $jobs{$op};
  my $ok = $job && eval { $job->(@args); 1 };
  my $why = $job ? ($@ || 'failed') : "unknown job $op";
  $why =~ s/[\t\n]+/ /g; $why =~ s/\s+$//;
  answer($id, $ok ? 'ok' : ('err', $why));
  POSIX::_exit(0);
}
`;
}

interface Pending {
  op: string;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class HostHelper {
  private child: ChildProcess | undefined;
  private readonly pending = new Map<string, Pending>();
  private seq = 0;
  private readonly source: string;

  constructor(jobs: HelperJobs, extras: HelperExtras = {}) {
    for (const name of [...Object.keys(jobs), ...Object.keys(extras.inline ?? {})]) if (!JOB_NAME.test(name)) throw new Error(`helper job name ${name} must match ${JOB_NAME}`);
    this.source = script(jobs, extras);
  }

  /**
   * Runs job `op` with `args` in a child of the helper; resolves when it has done so, rejects
   * with its error message. The helper starts on first use and again after it died.
   */
  run(op: string, args: readonly string[], timeoutMs: number): Promise<void> {
    for (const a of [op, ...args]) if (!FIELD.test(a)) return Promise.reject(new HostHelperError(op, 'an argument holds a tab or a newline'));
    const child = this.start();
    const id = String(++this.seq);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new HostHelperError(op, `no answer after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { op, resolve, reject, timer });
      child.stdin?.write(`${[id, op, ...args].join('\t')}\n`);
    });
  }

  /** Stops the helper (children still running finish on their own). */
  close(): void {
    this.child?.stdin?.end();
    this.child = undefined;
  }

  private start(): ChildProcess {
    if (this.child) return this.child;
    const child = spawn('/usr/bin/perl', ['-e', this.source], { stdio: ['pipe', 'pipe', 'pipe'], env: TOOL_ENV });
    this.child = child;
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
    child.stdin?.on('error', () => undefined); // EPIPE when it died: 'exit' below fails what was pending
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [id = '', status, message] = line.split('\t');
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      clearTimeout(p.timer);
      if (status === 'ok') p.resolve();
      else p.reject(new HostHelperError(p.op, message ?? 'failed'));
    });
    const died = (why: string): void => {
      if (this.child === child) this.child = undefined;
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new HostHelperError(p.op, `the host helper ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
      }
    };
    child.on('error', (err) => died(`failed to start (${err.message})`));
    child.on('exit', (code, signal) => died(`exited (${signal ?? code})`));
    return child;
  }
}
