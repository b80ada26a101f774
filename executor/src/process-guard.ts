/**
 * The last line of defence for a process that serves many sandboxes: an exception that escapes
 * a handler (a bug, or input nobody foresaw) is logged and the process keeps serving, instead of
 * ending every sandbox and session it holds. Handlers still map their own errors; this only
 * catches what slipped past them, and each catch is a bug to fix, so it is logged with its stack.
 */
export function guardProcess(name: string, log: (line: string) => void = (line) => process.stderr.write(line + '\n')): void {
  process.on('uncaughtException', (err, origin) => {
    log(`${name}: ${origin} kept the process alive: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  });
  process.on('unhandledRejection', (reason) => {
    log(`${name}: unhandled rejection kept the process alive: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  });
}
