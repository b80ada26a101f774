#!/usr/bin/env node
import { join } from 'node:path';
import { closeInheritedFds } from '@kiln/proto/inherited-fds';
import { createAgentServer, listen } from './agent/server.js';
import { ConfigError, loadConfig } from './config.js';
import { NfsServer } from './nfs/server.js';
import { SessionExports } from './nfs/session-exports.js';
import { guardProcess } from './process-guard.js';
import { CgroupStep, detectCgroups } from './sandbox/cgroup.js';
import { devptsStep } from './sandbox/devpts.js';
import { SandboxManager } from './sandbox/manager.js';
import { acquireUidLease, UID_RANGE_BUSY_EXIT, UidRangeBusyError } from './sandbox/uid-lease.js';
import { detectWorkspaceFs } from './sandbox/workspace-fs.js';
import { VolumeHost } from './sandbox/volumes.js';
import { OutboundNetwork } from './sandbox/network.js';
import { TlsInterceptor } from './egress/intercept.js';
import { EgressStep } from './egress/step.js';

/**
 * Executor entry point. Prints one JSON line `{"event":"ready","port":N,"nfsPort":M}` on stdout
 * once the agent (and, when configured, the NFS server) listens, which is how the local platform
 * learns ephemeral ports. `nfsPort` is 0 when NFS is off.
 */
async function main(): Promise<void> {
  // Before anything is spawned: no inherited fd, and no token in the environment, may reach
  // bwrap, nsenter or a sandbox (THREAT-MODEL.md, "Secrets").
  closeInheritedFds();
  const config = loadConfig();
  guardProcess(`executor ${config.executorId}`);
  delete process.env.KILN_AGENT_TOKEN;
  // Sandboxes get host uids of their own only when the executor runs as root; then the range
  // must be this executor's alone on the host before any sandbox starts (uid-lease.ts). Taken
  // while the agent starts, and awaited before the ready line: no sandbox is created before it.
  const leaseDir = process.getuid?.() === 0 ? config.sandboxUidLeaseDir : undefined;
  const leased = leaseDir
    ? acquireUidLease(leaseDir, config.sandboxUidBase, config.maxSandboxes, (reason) => {
        process.stderr.write(`executor ${config.executorId}: ${reason}; its uid range is no longer guarded, stopping\n`);
        process.kill(process.pid, 'SIGTERM');
      }).then(
        () => undefined,
        // Kept as a value until awaited below, so a refusal is not an unhandled rejection meanwhile.
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      )
    : Promise.resolve(undefined);
  const cgroups = await detectCgroups(config.executorId, config.maxSandboxes);
  if (!cgroups.driver) process.stderr.write(`executor ${config.executorId}: warning: no cgroup per sandbox, so memory, process and CPU limits are only the container's: ${cgroups.detail}\n`);
  const workspaceFs = await detectWorkspaceFs(config.dataDir);
  if (workspaceFs.kind === 'none') process.stderr.write(`executor ${config.executorId}: warning: ${workspaceFs.detail}\n`);
  const egress = new EgressStep({ upstreamDns: config.egressDns });
  const sandboxes = new SandboxManager({
    dataDir: config.dataDir,
    maxSandboxes: config.maxSandboxes,
    runners: config.runners,
    uidBase: config.sandboxUidBase,
    bwrapPath: config.bwrapPath,
    // devpts last: it waits for bwrap to finish the sandbox, the others need only its namespaces.
    bootSteps: [...(cgroups.driver ? [new CgroupStep(cgroups.driver)] : []), new OutboundNetwork(), egress, devptsStep()],
    workspaceFs,
    // Volumes need what hard-sized workspaces need (root, loop devices, e2fsprogs).
    volumes: new VolumeHost(config.volumeDir, workspaceFs.kind === 'ext4-image' ? undefined : workspaceFs.detail, config.volumeIdleUnmountMs),
  });
  await sandboxes.init();
  // After init (it makes the etc dir the sandbox's copies of the CA go into), before any sandbox.
  if (config.egressCa) {
    egress.interceptor = await TlsInterceptor.open({ caCert: config.egressCa.cert, caKey: config.egressCa.key, upstreamCa: config.egressCa.upstreamCa, workDir: join(config.dataDir, 'egress-tls'), etcDir: join(config.dataDir, 'etc') });
  }
  // The one session → sandbox table: the Nfs gRPC service binds into it, the NFS server
  // resolves exports from it (passed to both, never looked up).
  const exportsTable = new SessionExports(sandboxes);
  // Both listeners bind before the ready line, so a bind failure (port taken) stops the
  // executor first: an executor that silently lacks NFS would hand out sessions with dead nfsUrls.
  let nfs: { server: NfsServer; port: number } | undefined;
  if (config.nfs) {
    const server = new NfsServer({ resolver: exportsTable, host: config.nfs.host, port: config.nfs.port, trustedProxies: config.nfs.trustedProxies, ...(config.token ? { proxyKey: config.token } : {}) });
    nfs = { server, port: (await server.listen()).port };
  }
  const nfsEndpoint = nfs && { port: nfs.port, exportTag: (id: string) => nfs.server.exportTag(id) };
  const server = createAgentServer(config, {
    sandboxes,
    exports: exportsTable,
    egress,
    ...(nfsEndpoint ? { nfs: nfsEndpoint } : {}),
    limits: { limits: cgroups.driver ? `cgroup-${cgroups.driver.version}` : 'none', detail: cgroups.detail },
  });
  const port = await listen(server, config.listenHost, config.listenPort);
  const leaseError = await leased;
  if (leaseError) throw leaseError;
  process.stdout.write(JSON.stringify({ event: 'ready', executorId: config.executorId, port, nfsPort: nfs?.port ?? 0, pid: process.pid }) + '\n');

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`executor ${config.executorId}: ${signal}, stopping\n`);
    server.forceShutdown();
    // Each owner closes what it holds: the NFS server its connections and fds, the manager its
    // sandboxes and spare workspaces, the cgroup driver its parent cgroup.
    Promise.all([nfs?.server.close(), sandboxes.close().then(() => cgroups.driver?.close())]).then(
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
  if (err instanceof UidRangeBusyError) {
    // The local platform reads this status as "try another range" (control-plane platforms/local.ts).
    process.stderr.write(`executor failed: ${err.message}\n`);
    process.exit(UID_RANGE_BUSY_EXIT);
  }
  process.stderr.write(`${err instanceof ConfigError ? 'configuration error' : 'executor failed'}: ${(err as Error).message}\n`);
  process.exit(1);
});
