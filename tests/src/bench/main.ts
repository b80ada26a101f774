import { benchCode } from './code.js';
import { benchDocker } from './docker.js';
import { benchE2b } from './e2b.js';
import { benchEgress } from './egress.js';
import { benchExecutions } from './executions.js';
import { applyCpuPolicy } from '@kiln/control-plane/cpu-policy';
import { benchFiles } from './files.js';
import { benchFloor } from './floor.js';
import { benchFunctionUrls } from './function-urls.js';
import { benchLambdaSdk } from './lambda-sdk.js';
import { benchNfs } from './nfs.js';
import { benchPause } from './pause.js';
import { benchPools } from './pools.js';
import { startRedis } from './redis.js';
import { benchSdkPython } from './sdk-python.js';
import { benchSessions } from './sessions.js';
import { benchSdk } from './sdk.js';
import { benchSoak } from './soak.js';
import { benchStreaming } from './streaming.js';
import { printRows } from './stats.js';
import { benchTenancy } from './tenancy.js';
import { benchVolumes } from './volumes.js';
import { benchSyncedVolumes } from './volumes-synced.js';

/**
 * `npm run bench`: every figure beside a floor measured in the same run, because these
 * machines are shared and noisy. BENCH_SAMPLES / BENCH_SECONDS shorten or lengthen it.
 */
async function main(): Promise<void> {
  // The AWS SDK warns once per process that its 2027 releases need Node 22; the lock file pins
  // a release that runs on Node 20, and the load clients (child processes) would repeat it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const samples = Number(process.env.BENCH_SAMPLES ?? 1000);
  const durationMs = Number(process.env.BENCH_SECONDS ?? 5) * 1000;
  const clients = [32];
  // BENCH_ONLY=pools,nfs runs only those sections (the floor always runs: it is the baseline).
  const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
  const wanted = (section: string): boolean => !only || only.includes(section);
  const redis = await startRedis();
  try {
    // The control plane runs this process as SCHED_BATCH (KILN_CPU_POLICY's default) from its
    // first start; the floor, measured in this process too, runs under the same class from the
    // start. Redis, started before, stays as it would be outside Kiln.
    applyCpuPolicy('batch');
    const floor = await benchFloor(redis.socket, { samples, durationMs, clients });
    printRows('Floor (same Redis, same run)', floor.rows);
    if (wanted('executions'))
      printRows('Executions and functions through the whole stack', await benchExecutions(redis.socket, floor, { samples, durationMs, clients }));
    if (wanted('lambda')) printRows('Lambda API through the AWS SDK, beside an unsandboxed emulator', await benchLambdaSdk(redis.socket, floor, { samples, durationMs, clients }));
    if (wanted('urls')) printRows('Function URLs beside hot Invoke', await benchFunctionUrls(redis.socket, { samples, durationMs, clients }));
    if (wanted('streaming')) printRows('Response streaming: time to first byte', await benchStreaming(redis.socket, { samples }));
    if (wanted('sessions')) printRows('Sessions', await benchSessions(redis.socket, { samples: Math.min(samples, 300) }));
    if (wanted('volumes')) printRows('Volumes: sessions with a volume, beside warm creates and /workspace', await benchVolumes(redis.socket, { samples }));
    if (wanted('volumes-synced')) printRows('Synced volumes: sync and fill, beside tar in the sandbox and an empty volume', await benchSyncedVolumes(redis.socket, { samples }));
    if (wanted('pause')) printRows('Sessions: pause, resume, snapshots and forks', await benchPause(redis.socket, { samples: Math.min(samples, 100) }));
    if (wanted('sdk')) printRows('TypeScript SDK beside plain fetch', await benchSdk(redis.socket, { samples: Math.min(samples, 400) }));
    if (wanted('e2b'))
      printRows('Time to interactive through the E2B SDK, beside REST', await benchE2b(redis.socket, { samples: Math.min(samples, Number(process.env.BENCH_E2B_SAMPLES ?? 50)), burst: Number(process.env.BENCH_E2B_BURST ?? 100) }));
    if (wanted('code')) printRows('Code contexts (code-interpreter template)', await benchCode(redis.socket, { samples: Math.min(samples, 300) }));
    if (wanted('egress')) printRows('Egress proxy: HTTP through Kiln DNS and proxy, beside direct to the same server', await benchEgress(redis.socket, { samples }));
    if (wanted('nfs')) printRows('NFS export of a session workspace', await benchNfs(redis.socket));
    if (wanted('files')) printRows('Files through the REST files API, beside plain HTTP and cp', await benchFiles(redis.socket));
    if (wanted('pools')) printRows('Start types and pools', await benchPools(redis.socket, floor, { samples, durationMs, clients: [32, 128] }));
    if (wanted('soak')) printRows('Soak (lost, duplicated and stranded invocations)', await benchSoak(redis.socket, floor));
    if (wanted('tenancy')) printRows('Tenancy: authentication cost and fair share', await benchTenancy(redis.socket, { samples }));
    if (wanted('sdk-python')) printRows('Python SDK beside bare http.client', await benchSdkPython(redis.socket));
    if (wanted('docker')) printRows('Docker platform (Podman) cold start', await benchDocker({ samples: Number(process.env.BENCH_DOCKER_SAMPLES ?? 7) }));
  } finally {
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
