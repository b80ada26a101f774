import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { InvokeStatus } from '@kiln/proto/executor/invoke';
import { AgentPool } from '@kiln/control-plane/agent/client';
import { DockerPlatform } from '@kiln/control-plane/platforms/docker';
import { LocalPlatform } from '@kiln/control-plane/platforms/local';
import type { Platform } from '@kiln/control-plane/platforms/platform';
import { EXECUTOR_MAIN } from '@kiln/control-plane/server';
import { UidRanges } from '@kiln/control-plane/platforms/uids/ranges';
import { Keys } from '@kiln/control-plane/store/keys';
import { Redis } from 'ioredis';
import { hostname } from 'node:os';
import { startRedisServer } from '../support/redis-server.js';
import { templateSchema, type Template } from '@kiln/control-plane/templates';
import { podmanUnavailable, removeDeployment, startPodman } from '../support/podman.js';
import { percentiles, type Row } from './stats.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** Starts an executor and runs one trivial invocation in a new sandbox: a pool refill's whole cost. */
async function coldStart(runtime: Platform, template: Template, agents: AgentPool): Promise<number> {
  const id = `ex-bench-${randomBytes(4).toString('hex')}`;
  const t0 = performance.now();
  try {
    const handle = await runtime.start(template, id);
    const agent = agents.get(handle);
    const sandboxId = `sbx-${id}`;
    await agent.createSandbox({ sandboxId, runner: 'nodejs', resources: { memoryMb: 128, diskMb: 64, maxProcesses: 64, maxOpenFiles: 256, cpu: 1 }, allowNetwork: false, allowCidrs: [], aheadOfTime: false, egressPolicyJson: '' });
    const res = await agent.invoke(
      {
        sandboxId,
        requestId: id,
        functionKey: 'bench:1',
        function: { functionKey: 'bench:1', name: 'bench', version: '1', runner: 'nodejs', handler: 'index.handler', files: [{ path: 'index.js', content: Buffer.from('exports.handler = async () => 1;\n'), mode: 0o644 }], env: {}, memoryMb: 128, tenant: 'default', region: '', ephemeralStorageMb: 0 },
        payload: Buffer.from('{}'),
        timeoutMs: 10_000,
        clientContext: '',
        invokedFunctionArn: '',
      },
      15_000,
    );
    if (res.status !== InvokeStatus.INVOKE_STATUS_SUCCEEDED) throw new Error(`bench invocation failed: ${res.error?.errorMessage ?? res.status}`);
    return performance.now() - t0;
  } finally {
    agents.drop(id);
    await runtime.stop(id);
  }
}

async function samples(n: number, fn: () => Promise<number>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

/**
 * Docker platform cold start (container create → agent ready → sandbox → first invocation),
 * beside a bare `podman run --rm <same image> true` and the same steps with a local executor
 * process, all in this run. Target: docker ≤ 1.5 × (bare container + local executor).
 */
export async function benchDocker(opts: { samples: number }): Promise<Row[]> {
  const why = podmanUnavailable();
  if (why) return [{ name: 'docker platform', value: NaN, unit: '', note: `skipped: ${why}` }];
  const podman = await startPodman({ templates: ['nodejs'] });
  const deployment = `bench${randomBytes(3).toString('hex')}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-bench-docker-'));
  chmodSync(dataDir, 0o755);
  const template = templateSchema.parse({ ...JSON.parse(readFileSync(join(REPO, 'templates/nodejs.json'), 'utf8')), platform: 'docker' });
  template.pool.sandboxesPerExecutor = 2;
  const docker = new DockerPlatform({ deployment, host: podman.host, seccompProfile: join(REPO, 'infra/podman/seccomp.json') });
  // The local executor needs a uid range: from a Redis of its own (the host lease keeps it apart from others').
  const redisServer = await startRedisServer(dataDir);
  const redis = new Redis({ path: redisServer.socket });
  const local = new LocalPlatform({ deployment, dataDir, executorMain: EXECUTOR_MAIN, uids: new UidRanges(redis, Keys.hostUidRanges(hostname())) });
  const agents = new AgentPool();
  try {
    const env = { ...process.env, CONTAINERS_CONF: podman.containersConf };
    const bare = async () => {
      const t0 = performance.now();
      await run('podman', ['run', '--rm', template.image, 'true'], { env });
      return performance.now() - t0;
    };
    // One of each first: image layers and page cache warm, the network created.
    await bare();
    await coldStart(docker, template, agents);
    await coldStart(local, template, agents);
    const b = percentiles(await samples(opts.samples, bare)).p50;
    const l = percentiles(await samples(opts.samples, () => coldStart(local, template, agents))).p50;
    const d = percentiles(await samples(opts.samples, () => coldStart(docker, template, agents))).p50;
    const ratio = d / (b + l);
    return [
      { name: 'bare `podman run --rm <image> true` (p50)', value: b, unit: 'ms' },
      { name: 'local executor: start → first invocation (p50)', value: l, unit: 'ms' },
      { name: 'docker executor: container start → first invocation (p50)', value: d, unit: 'ms' },
      { name: 'docker / (bare container + local executor)', value: ratio, unit: 'x', note: `target < 1.5 (${ratio < 1.5 ? 'met' : 'NOT met'})` },
    ];
  } finally {
    agents.closeAll();
    await removeDeployment(podman.docker, deployment);
    await podman.stop();
    redis.disconnect();
    await redisServer.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
