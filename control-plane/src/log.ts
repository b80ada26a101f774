import { AsyncLocalStorage } from 'node:async_hooks';

/** One-line JSON logs on stderr; stdout stays free for whatever a CLI prints. */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof LEVELS;

/**
 * Who a line is on behalf of: the tenant and key id of the request being handled (never the
 * key itself), or the tenant of the queued job being run. Set once per request or job.
 */
export interface LogContext {
  readonly tenant: string;
  readonly keyId?: string;
}

let threshold: number = LEVELS.info;

/**
 * The default sink: lines gathered during one turn of the event loop go to stderr in one write
 * when it ends (setImmediate), so a line per request costs the caller a string push, not a
 * write(2) each (writes to a file or pipe are synchronous on Linux). A full batch is written at
 * once, and whatever is gathered at exit is written then (process.exit and uncaught errors both
 * emit 'exit'); a process killed by SIGKILL loses at most one turn's lines.
 */
const MAX_GATHERED = 1024;
const gathered: string[] = [];
let flushing = false;
function flushLog(): void {
  flushing = false;
  if (gathered.length === 0) return;
  const chunk = gathered.join('');
  gathered.length = 0;
  process.stderr.write(chunk);
}
function gatherToStderr(line: string): void {
  gathered.push(line);
  if (gathered.length >= MAX_GATHERED) flushLog();
  else if (!flushing) {
    flushing = true;
    setImmediate(flushLog);
  }
}
process.on('exit', flushLog);

let sink: (line: string) => void = gatherToStderr;
const context = new AsyncLocalStorage<LogContext>();

export function setLogLevel(level: Level): void {
  threshold = LEVELS[level];
}

/** Whether a line of `level` would be written: check it before building costly fields. */
export function logging(level: Level): boolean {
  return LEVELS[level] >= threshold;
}

/** Where lines go (stderr by default); returns the previous sink. For tests. */
export function setLogSink(write: (line: string) => void): (line: string) => void {
  const previous = sink;
  sink = write;
  return previous;
}

/**
 * Runs `fn` (a request's handling, a job's attempt) with `ctx` merged into every line logged
 * from it and from whatever it starts asynchronously. The auth middleware, the PTY upgrade and
 * the queue worker call it; nothing else needs to pass the tenant along.
 */
export function withLogContext<T>(ctx: LogContext, fn: () => T): T {
  return context.run(ctx, fn);
}

/**
 * Runs `fn` outside any request or job. For what a request happens to create but everyone
 * shares afterwards (a queue's connection, a timer that serves every tenant): async resources
 * keep the context they were made in, and their later lines would name that first caller.
 */
export function withoutLogContext<T>(fn: () => T): T {
  return context.exit(fn);
}

/** The context of the request or job being handled here, if any. */
export function logContext(): LogContext | undefined {
  return context.getStore();
}

export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
  if (LEVELS[level] < threshold) return;
  // A line's own fields win over the context's (a line may name another tenant's resource).
  const ctx = context.getStore();
  sink(JSON.stringify(ctx ? { t: new Date().toISOString(), level, msg, ...ctx, ...fields } : { t: new Date().toISOString(), level, msg, ...fields }) + '\n');
}
