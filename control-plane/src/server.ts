import { serve, type ServerType } from '@hono/node-server';
import { VolumeService } from './volumes/service.js';
import { FileLinks } from './sessions/file-links.js';
import { S3CodeSource } from './functions/s3-code.js';
import { CodeLinks } from './functions/code-links.js';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { AgentPool } from './agent/client.js';
import { createApp } from './api/app.js';
import { FunctionUrlService, FunctionUrlStore } from './functions/urls.js';
import type { Server as HttpServer } from 'node:http';
import { attachSessionPty } from './api/routes/sessions-pty.js';
import { browserPolicy, isLoopback } from './api/origin.js';
import { SessionReaper } from './sessions/reaper.js';
import { SessionService } from './sessions/service.js';
import { SessionStore } from './sessions/records.js';
import { NfsGateway } from './nfs-gateway/gateway.js';
import { SessionRoutes, type Wake } from './nfs-gateway/routes.js';
import { stopExecutorsFor, type Config } from './config.js';
import { applyCpuPolicy } from './cpu-policy.js';
import { ExecutionService } from './executions/service.js';
import { Dispatcher } from './invocation/dispatch.js';
import { OutcomePolicy } from './invocation/outcome.js';
import { Submitter } from './invocation/submit.js';
import { DeadLetterStore } from './functions/deadletters.js';
import { sendToDestination, type DestinationInvoke } from './functions/destinations.js';
import { FunctionInvoker } from './functions/invoker.js';
import { FunctionExtras } from './functions/settings.js';
import { setRegion } from './functions/arn.js';
import { EventInvokeConfigs } from './functions/event-invoke.js';
import { CodePackages } from './functions/package.js';
import { FunctionService } from './functions/service.js';
import { FunctionStore } from './functions/store.js';
import { AliasStore } from './functions/alias-store.js';
import { AliasService } from './functions/aliases.js';
import { blobStoreFor } from './storage/select.js';
import { SessionLifecycle } from './sessions/lifecycle.js';
import { SnapshotService } from './sessions/snapshots.js';
import { migrateBlobsOutOfRedis } from './storage/migrate.js';
import { ExecutionHistory } from './executions/history.js';
import { FinishedWrites } from './executions/finished-writes.js';
import { DEFAULT_TENANT } from './tenancy/principal.js';
import { FunctionStats } from './observability/function-stats.js';
import { StartLatency } from './observability/start-latency.js';
import { PoolsView } from './observability/pools.js';
import { SessionUsageReader } from './observability/session-usage.js';
import { PtyTickets } from './sessions/pty-tickets.js';
import { BlobRetirements } from './storage/retired.js';
import { log, setLogLevel } from './log.js';
import { ExecutionQueues } from './queue/queues.js';
import { ReplyRouter } from './queue/replies.js';
import { reconcile } from './recovery.js';
import { SessionSandboxWatch } from './sessions/sandbox-watch.js';
import { bullConnectionOptions, commandConnection, redisTarget, trackingConnections, type RedisTarget } from './redis/connection.js';
import { TrackedReads } from './redis/tracked-reads.js';
import { startEmbeddedRedis, type EmbeddedRedis } from './redis/embedded.js';
import { PlatformRouter } from './platforms/select.js';
import type { Platform } from './platforms/platform.js';
import { UidRanges } from './platforms/uids/ranges.js';
import { PoolKeeper } from './scheduler/keeper.js';
import { LeaseCache } from './scheduler/lease-cache.js';
import { SandboxRecords } from './scheduler/records.js';
import { ReplicaHeartbeat } from './scheduler/replicas.js';
import { Scheduler } from './scheduler/scheduler.js';
import { PoolSignals } from './scheduler/signals.js';
import { Keys } from './store/keys.js';
import { envKeys, Keyring } from './tenancy/keyring.js';
import { Quotas } from './tenancy/quotas.js';
import { Sealer } from './tenancy/sealer.js';
import { loadTemplateFiles, TemplateRegistry } from './templates/registry.js';
import { TemplateAdmin } from './templates/admin.js';
import { registerEgressMetrics } from './egress/metrics.js';
import { SecretStore } from './egress/secrets.js';
import { EgressGrants } from './egress/grants.js';
import { EgressPlacement } from './egress/placement.js';
import { KilnMetrics } from './metrics/kiln.js';
import { mcpEndpoint } from './mcp/http.js';
import { guardConnections } from './api/connection-guard.js';

export const EXECUTOR_MAIN = fileURLToPath(new URL('../../executor/dist/main.js', import.meta.url));

/** A running control plane; `stop` takes it down in reverse order of start. */
export interface Kiln {
  url: string;
  port: number;
  templates: TemplateRegistry;
  keeper: PoolKeeper;
  /** Bound port of the single-port NFS gateway; undefined when KILN_NFS_PORT is unset. */
  nfsPort: number | undefined;
  /**
   * Stops this control plane. `stopExecutors` (default: KILN_STOP_EXECUTORS_ON_EXIT, with
   * `interrupt` read as yes, as for Ctrl-C) also stops the deployment's executors when no other
   * replica is alive, and marks their sessions lost; no leaves them for the next one to adopt.
   */
  stop(opts?: { stopExecutors?: boolean }): Promise<void>;
}

/** Wires every part from a validated config and starts serving. */
/**
 * How long a stopping server lets requests under way finish before it cuts the connections left:
 * streams (process output, E2B process and terminal connections, SSE) would otherwise hold a stop
 * forever. What they stream lives in the executor and is re-attached after the restart.
 */
const SHUTDOWN_GRACE_MS = 5000;

function closeServer(server: HttpServer): Promise<void> {
  return new Promise<void>((resolve) => {
    const cut = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
    server.close(() => {
      clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
  });
}

export async function startKiln(config: Config): Promise<Kiln> {
  setLogLevel(config.logLevel);
  // Before anything starts: the embedded Redis and local executors inherit it.
  if (config.cpuPolicy === 'batch') applyCpuPolicy('batch');
  let embedded: EmbeddedRedis | undefined;
  let target: RedisTarget;
  if (config.redisUrl) target = redisTarget(config.redisUrl);
  else {
    embedded = await startEmbeddedRedis(join(config.dataDir, 'redis'));
    target = { socket: embedded.socket };
  }
  const redis = commandConnection(target);
  // Surfaced by /health and as 503s; ioredis reconnects by itself.
  redis.on('error', (err: Error) => log('debug', 'redis connection error', { error: err.message }));
  await redis.ping().catch(async () => {
    await new Promise((r) => setTimeout(r, 500));
    await redis.ping();
  });

  const keys = new Keys(config.prefix);
  // First: a replica stopping meanwhile must see this one, or it would stop executors we adopt.
  const heartbeat = new ReplicaHeartbeat(redis, keys);
  await heartbeat.start();
  const templates = new TemplateRegistry(redis, keys);
  await templates.seed(await loadTemplateFiles(config.templatesDir));
  // KILN_PLATFORM's adapter, or the one a template names in its `platform` field (platforms/select.ts).
  const runtime: Platform = new PlatformRouter(config, EXECUTOR_MAIN, () => templates.all(), { uids: new UidRanges(redis, Keys.hostUidRanges(hostname())) });
  const agents = new AgentPool();
  const records = new SandboxRecords(redis, keys);
  // What the scheduler notices (no room, an executor lost) reaches the lease cache, the keeper
  // and the sessions through these signals, each subscribing in its own constructor.
  const signals = new PoolSignals();
  const scheduler = new Scheduler(records, agents, signals);
  const leases = new LeaseCache(scheduler, config.leaseHoldMs, signals);
  const keeper = new PoolKeeper(redis, keys, records, templates, runtime, scheduler, agents, signals, heartbeat);
  const subscriber = new Redis(bullConnectionOptions(target));
  // Reconnects and resubscribes by itself; the outage shows in /health and as 503s.
  subscriber.on('error', (err: Error) => log('debug', 'reply subscriber connection error', { error: err.message }));
  const replies = new ReplyRouter(randomUUID(), keys.prefix, redis, subscriber);
  await replies.start();
  const queues = new ExecutionQueues(bullConnectionOptions(target), keys.queuePrefix, templates, { resultTtlSeconds: config.resultTtlSeconds });
  // Stored keys' secrets are sealed with a key outside Redis (tenancy/sealer.ts).
  const sealer = await Sealer.open(config.secretKey, join(config.dataDir, 'secret.key'));
  const keyring = new Keyring(redis, keys, envKeys(config.apiKeys, config.adminApiKeys), sealer);
  const sessionRecords = new SessionStore(redis, keys);
  const metrics = new KilnMetrics(records, templates, queues, leases, { sessions: sessionRecords, tenantLabel: config.metrics.tenantLabel });
  registerEgressMetrics(metrics.registry, templates, records, agents);
  const quotas = new Quotas(redis, keys, keyring, config.quotas, {
    finishedJobs: (template, ids) => queues.finished(template, ids),
    endedSessions: (ids) => sessionRecords.ended(ids),
  });
  // The invocation path (invocation/): submit → queue (transport) → outcome policy → dispatch.
  const submitter = new Submitter(queues, replies, templates, metrics, quotas);
  const history = new ExecutionHistory(redis, keys, config.resultTtlSeconds);
  const functionStats = new FunctionStats(redis, keys, config.resultTtlSeconds);
  const startLatency = new StartLatency(redis, keys);
  const executions = new ExecutionService(submitter, templates, { defaultTimeoutMs: config.defaultTimeoutMs, maxTimeoutMs: config.maxTimeoutMs }, { index: history, records: (jobs) => queues.records(jobs) });
  // Code packages in the configured blob store; Redis keeps the records (and the blobs of deployments from before, moved once).
  const blobs = await blobStoreFor(config.blobs, redis, keys);
  await migrateBlobsOutOfRedis(redis, keys, blobs);
  const retirements = new BlobRetirements(redis, keys.retiredBlobs(), blobs);
  retirements.start();
  const codePackages = new CodePackages(blobs, retirements);
  const urlStore = new FunctionUrlStore(redis, keys);
  // Egress secrets and grants (egress/): sessions and functions name them; their policies and secrets go onto each sandbox they get.
  const egressSecrets = new SecretStore(redis, keys, sealer);
  const egressGrants = new EgressGrants(redis, keys);
  const egressPlacement = new EgressPlacement(templates, egressGrants, egressSecrets);
  // Function records, read on every invocation, come from memory while Redis says they have not changed.
  const tracking = trackingConnections(target);
  for (const conn of [tracking.reader, tracking.invalidations]) conn.on('error', (err: Error) => log('debug', 'tracked reads connection error', { error: err.message }));
  const trackedReads = new TrackedReads(tracking.reader, tracking.invalidations, redis);
  const aliasStore = new AliasStore(redis, keys, trackedReads);
  const functions = new FunctionService(new FunctionStore(redis, keys, trackedReads), aliasStore, codePackages, templates, { maxTimeoutMs: config.maxTimeoutMs, maxEphemeralStorageMB: config.maxEphemeralStorageMB }, quotas, egressPlacement);
  const deadLetters = new DeadLetterStore(redis, keys);
  setRegion(config.region);
  const extras = new FunctionExtras(redis, keys, functions, quotas);
  const eventConfigs = new EventInvokeConfigs(redis, keys, functions);
  const invoker = new FunctionInvoker(functions, submitter, deadLetters, extras, eventConfigs);

  // Sandboxes that running sessions hold are kept whatever their lease says (recovery.ts).
  const heldBySessions = async (): Promise<Set<string>> => new Set((await sessionRecords.all()).filter((r) => r.state !== 'lost').map((r) => r.sandboxId));
  await reconcile({ records, runtime, agents, scheduler, templates, heldBySessions });
  // A pool that cannot fill at start-up is retried by the keeper's timer; serving starts anyway.
  for (const r of await Promise.allSettled(templates.all().map((t) => keeper.round(t)))) {
    if (r.status === 'rejected') log('warn', 'initial pool fill failed; the keeper will retry', { error: String(r.reason) });
  }
  keeper.start();
  // Listening before sessions are created, so every session record carries the bound port.
  const nfsGateway = config.nfs?.gateway ? new NfsGateway(new SessionRoutes(redis, keys, sessionRecords, records, (): Wake => (r) => sessions.resumeForNfs(r)), config.nfs.gateway) : undefined;
  const nfsPort = await nfsGateway?.listen();
  // The host directory is the one the local platform gives its executors (KILN_VOLUME_DIR).
  const volumes = new VolumeService(redis, keys, { ...config.volumes, hostDir: join(config.dataDir, 'volumes'), defaultPlatform: config.platform, limits: (tenant) => quotas.limits(tenant) }, new SessionStore(redis, keys), blobs);
  const sessions = new SessionService(redis, keys, templates, scheduler, records, agents, signals, {
    volumes,
    nfsHost: config.nfs?.host,
    ...(nfsPort !== undefined ? { nfsGatewayPort: nfsPort } : {}),
    quotas,
    egress: egressPlacement,
  });
  // Sessions whose sandbox did not survive the restart (their executor died or was stopped while
  // no control plane ran) are `lost` before the first request is served, never `running` first.
  const orphaned = await sessions.markOrphans(await sessions.store.all());
  if (orphaned.length > 0) log('warn', 'sessions lost while no control plane ran: their sandboxes are gone', { sessions: orphaned.length });
  const lifecycle = new SessionLifecycle(redis, keys, sessions, scheduler, records, agents, templates, blobs, config.sessionLifecycle);
  const snapshots = new SnapshotService(redis, keys, sessions, lifecycle, records, agents, { maxPerTenant: config.sessionLifecycle.maxSnapshotsPerTenant });
  const sessionReaper = new SessionReaper(redis, keys, sessions, 1000, lifecycle);
  sessionReaper.start();
  // A session's sandbox gone from an executor that lives on: its record goes, the reaper marks it lost.
  const sandboxWatch = new SessionSandboxWatch(sessions.store, records, agents, scheduler);
  sandboxWatch.start();
  // Destinations are async invocations of another function of the job's tenant (functions/destinations.ts).
  const destinationInvoke: DestinationInvoke = (who, ref, qualifier, payload, key, depth) => invoker.invoke(who, ref, qualifier, payload, 'Event', key, undefined, undefined, depth);
  // Every finished execution: the history, its function's figures, its template's start latency
  // and (settled, below) its quota release, in one transaction per turn of the event loop.
  const finishedWrites = new FinishedWrites(
    redis,
    [(tx, job, record) => history.append(tx, job, record), (tx, job, record) => functionStats.append(tx, job, record), (tx, job, record) => startLatency.append(tx, job, record)],
    (tx, job) => {
      const tenant = job.tenant ?? DEFAULT_TENANT;
      quotas.appendRelease(tx, tenant, job.template, job.id);
      if (job.reserved) quotas.appendReleaseReserved(tx, tenant, job.function.name, job.template, job.id);
    },
  );
  const outcomes = new OutcomePolicy(
    new Dispatcher(scheduler, agents, templates, leases, codePackages, egressPlacement),
    replies,
    metrics,
    (job, record, attempts) => deadLetters.add(job, record, attempts),
    finishedWrites,
    (job, record, condition, attempts) => sendToDestination(destinationInvoke, job, record, condition, attempts),
  );
  // A job that ran its last attempt stops counting against its tenant's executions quota (and its
  // function's reserved concurrency), in the same transaction as its other writes. A release lost
  // there (Redis gone) is found later by the quota's reconcile (tenancy/quotas.ts).
  await queues.startWorkers(outcomes.handle, (job) => finishedWrites.settled(job));
  // Templates created, changed or deleted on any replica: workers and pools follow here too.
  templates.onChange((change) => {
    const done = (what: string) => (err: unknown) => log('warn', `could not ${what} after a template change`, { change: change.kind, error: String(err) });
    if (change.kind === 'removed') {
      queues
        .stopWorker(change.name)
        .then(() => {
          leases.flush(change.name);
          return keeper.retire(change.name);
        })
        .catch(done('tear down the pool'));
    } else {
      queues.startWorker(change.template).catch(done('start the worker'));
      keeper.wake(change.template);
    }
  });
  templates.start();
  const templateAdmin = new TemplateAdmin(templates, queues, records, leases);

  const browser = browserPolicy(config.host, config.allowedHosts, config.allowedOrigins);
  if (!isLoopback(config.host) && config.apiKeys.length === 0) {
    log('warn', `KILN_HOST is ${config.host} and no KILN_API_KEYS are set: ANYONE WHO CAN REACH THIS ADDRESS CAN RUN CODE HERE. Set KILN_API_KEYS, or listen on 127.0.0.1.`);
  }
  const ptyTickets = new PtyTickets(redis, keys);
  const mcp = mcpEndpoint({ sessions, executions, templates, functions: { service: functions, invoker }, lifecycle: { sessions: lifecycle, snapshots } }, { maxBodyBytes: config.maxBodyBytes, redis, maxSessionsPerTenant: config.mcpMaxSessionsPerTenant });
  const app = createApp({
    volumes,
    redis,
    executions,
    executors: records,
    agents,
    templates,
    maxBodyBytes: config.maxBodyBytes,
    maxFileBytes: config.maxFileBytes,
    fileLinks: new FileLinks(sealer.derive('file-links')),
    keys,
    publicLinkRps: config.publicLinkRps,
    maxUploadsPerTenant: config.maxUploadsPerTenant,
    templateAdmin,
    metrics,
    functions: { service: functions, invoker, aliases: new AliasService(functions, aliasStore, urlStore, eventConfigs), extras, eventConfigs, codeLinks: new CodeLinks(sealer.derive('code-links'), codePackages), s3Code: new S3CodeSource(config.lambdaS3) },
    sessions,
    sessionLifecycle: { lifecycle, snapshots },
    mcp,
    functionUrls: new FunctionUrlService(urlStore, functions),
    keyring,
    quotas,
    browser,
    egressSecrets,
    egressGrants,
    ptyTickets,
    consoleDir: config.consoleDir,
    observability: { pools: new PoolsView(records, templates, leases, startLatency, agents), functionStats, sessionUsage: new SessionUsageReader(sessions, records, agents) },
  });
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
  });
  // A file of gigabytes through the files API takes longer than Node's default 5 minutes for a
  // whole request; headersTimeout (60 s) still bounds a client that never finishes its headers.
  (server as HttpServer).requestTimeout = 3_600_000;
  // …which is why a body that stops moving, and one client's pile of sockets, are cut here.
  guardConnections(server as HttpServer, config.connections);
  const terminals = attachSessionPty(server as HttpServer, sessions, keyring, browser, ptyTickets);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${port}`;
  log('info', 'kiln is serving', { url, redis: 'socket' in target ? target.socket : 'external', templates: templates.names() });

  return {
    url,
    port,
    templates,
    keeper,
    nfsPort,
    async stop(opts = {}) {
      // Every step runs whatever the ones before it did: one that fails (an unreachable cluster,
      // a Redis gone already) is logged, and what this process started is still stopped.
      const step = async (what: string, fn: () => unknown): Promise<void> => {
        try {
          await fn();
        } catch (err) {
          log('warn', `shutdown: could not ${what}`, { error: String(err) });
        }
      };
      await step('stop the pool keeper', () => keeper.stop());
      await step('close the NFS gateway', () => nfsGateway?.close());
      await step('stop the session reaper', () => sessionReaper.stop());
      await step('stop the session sandbox watch', () => sandboxWatch.stop());
      await step('stop the retired blob sweep', () => retirements.stop());
      await step('close the blob store', () => blobs.close?.());
      await step('stop template refreshes', () => templates.stop());
      // Open MCP sessions hold SSE streams that would keep server.close() waiting.
      await step('close MCP sessions', () => mcp.close());
      await step('close open terminals', () => terminals.close());
      await step('close the HTTP server', () => closeServer(server as HttpServer));
      await step('close the queues', () => queues.close());
      // The last jobs' history, figures and quota releases, before the connection closes.
      await step('write finished executions', () => finishedWrites.flush());
      await step('flush held leases', () => leases.flush());
      await step('close the reply router', () => replies.close());
      await step('close the tracked reads', () => trackedReads.close());
      // Ends this replica's heartbeat; executors are stopped only if no other replica is alive.
      await step('close the pool keeper', async () => {
        const done = await keeper.close({ stopExecutors: opts.stopExecutors ?? stopExecutorsFor(config.stopExecutorsOnExit) });
        log('debug', 'pool keeper closed', { executors: done });
        // Their sandboxes went with the executors: the sessions say so now, not after a restart.
        if (done === 'stopped') await sessions.markOrphans(await sessions.store.all(), Date.now(), 'its executor was stopped with the control plane');
      });
      await step('close agent connections', () => agents.closeAll());
      await step('close the platform adapters', () => runtime.close());
      redis.disconnect();
      await step('stop the embedded Redis', () => embedded?.stop());
    },
  };
}
