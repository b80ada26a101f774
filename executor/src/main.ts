#!/usr/bin/env node
import { createAgentServer, listen } from './agent/server.js';
import { ConfigError, loadConfig } from './config.js';
import { NfsServer } from './nfs/server.js';
import { sessionExports } from './nfs/session-exports.js';
import { SandboxManager } from './sandbox/manager.js';
import { OutboundNetwork } from './sandbox/network.js';

/**
 * Executor entry point. Prints one JSON line `{"event":"ready","port":N,"nfsPort":M}` on stdout
 * once the agent (and, when configured, the NFS server) listens, which is how the local runtime
 * learns ephemeral ports. `nfsPort` is 0 when NFS is off.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const sandboxes = new SandboxManager({
    dataDir: config.dataDir,
    maxSandboxes: config.maxSandboxes,
    runtimes: config.runtimes,
    uidBase: config.sandboxUidBase,
    bwrapPath: config.bwrapPath,
    bootSteps: [new OutboundNetwork()],
  });
  await sandboxes.init();
  const server = createAgentServer(config, sandboxes);
  const port = await listen(server, config.listenHost, config.listenPort);
  // Started after the agent so a bind failure (port taken) stops the executor before it reports
  // ready: an executor that silently lacks NFS would hand out sessions with dead nfsUrls.
  const exportsTable = sessionExports(sandboxes);
  let nfs: NfsServer | undefined;
  if (config.nfs) {
    const server = new NfsServer({ resolver: exportsTable, host: config.nfs.host, port: config.nfs.port, trustedProxies: config.nfs.trustedProxies });
    nfs = server;
    exportsTable.nfsPort = (await server.listen()).port;
    exportsTable.exportTag = (id) => server.exportTag(id);
  }
  process.stdout.write(JSON.stringify({ event: 'ready', executorId: config.executorId, port, nfsPort: exportsTable.nfsPort, pid: process.pid }) + '\n');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`executor ${config.executorId}: ${signal}, stopping\n`);
    server.forceShutdown();
    Promise.all([nfs?.close(), sandboxes.destroyAll()]).then(
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
