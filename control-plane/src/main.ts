#!/usr/bin/env node
import { closeInheritedFds } from '@kiln/proto/inherited-fds';
import { ConfigError, loadConfig, stopExecutorsFor } from './config.js';
import { log } from './log.js';
import { startKiln } from './server.js';

/**
 * `npm start`: everything on one machine with no configuration. Ctrl-C (SIGINT) stops it all;
 * SIGTERM (a service manager's restart or upgrade) leaves the executors and their sessions
 * running for the next control plane to adopt, unless KILN_STOP_EXECUTORS_ON_EXIT says otherwise.
 */
async function main(): Promise<void> {
  // An fd the shell handed us (`5>file`, a pipe) would otherwise reach every executor, Redis child
  // and sandbox: libuv's spawn does not close fds that lack O_CLOEXEC.
  closeInheritedFds();
  const config = loadConfig();
  const kiln = await startKiln(config);
  process.stdout.write(`Kiln is ready at ${kiln.url} (API reference: ${kiln.url}/docs)\n`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    const stopExecutors = stopExecutorsFor(config.stopExecutorsOnExit, signal);
    log('info', 'stopping', { signal, executors: stopExecutors ? 'stopping them' : 'leaving them running for the next control plane to adopt' });
    kiln.stop({ stopExecutors }).then(
      () => process.exit(0),
      (err: unknown) => {
        log('error', 'stop failed', { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
  else process.stderr.write(`kiln failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
