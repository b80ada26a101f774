#!/usr/bin/env node
import { createAgentServer, listen } from './agent/server.js';
import { ConfigError, loadConfig } from './config.js';
import { SandboxManager } from './sandbox/manager.js';

/**
 * Executor entry point. Prints one JSON line `{"event":"ready","port":N}` on stdout once the
 * agent listens, which is how the local runtime learns an ephemeral port.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const sandboxes = new SandboxManager({
    dataDir: config.dataDir,
    maxSandboxes: config.maxSandboxes,
    runtimes: config.runtimes,
    uidBase: config.sandboxUidBase,
    bwrapPath: config.bwrapPath,
  });
  await sandboxes.init();
  const server = createAgentServer(config, sandboxes);
  const port = await listen(server, config.listenHost, config.listenPort);
  process.stdout.write(JSON.stringify({ event: 'ready', executorId: config.executorId, port, pid: process.pid }) + '\n');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`executor ${config.executorId}: ${signal}, stopping\n`);
    server.forceShutdown();
    sandboxes.destroyAll().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`executor ${config.executorId}: cleanup failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof ConfigError ? 'configuration error' : 'executor failed'}: ${(err as Error).message}\n`);
  process.exit(1);
});
