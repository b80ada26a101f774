import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import type Docker from 'dockerode';
import { Agent } from '../agent/client.js';
import { KilnError } from '../errors.js';
import { networkPolicy } from '../templates/network.js';
import type { Template } from '../templates/template.js';
import { containerTail, dockerClient, engineInfo, ensureNetwork, networkGateways, type EngineInfo } from './docker-engine.js';
import { AGENT_PORT, defaultNetworkName, envValue, executorContainerOptions, LABELS, NFS_PORT } from './docker-options.js';
import type { ExecutorHandle, Platform } from './platform.js';

export interface DockerPlatformOptions {
  /** Deployment name, the `kiln.deployment` label of every container. */
  deployment: string;
  /** The engine's API: unix:///path.sock or tcp://host:port (KILN_DOCKER_HOST / DOCKER_HOST). */
  host: string;
  /** Executor network; default `kiln-executors-<deployment>` (internal). */
  network?: string;
  /** Path of the seccomp profile bubblewrap needs (infra/podman/seccomp.json). */
  seccompProfile: string;
  startTimeoutMs?: number;
  /** Executors serve NFS on port 2049 of their container address (KILN_NFS_ENABLED). */
  nfs?: boolean;
}

/** An executor container did not come up; the message carries its last log lines. */
export class ExecutorStartError extends KilnError {
  constructor(executorId: string, why: string, logs: string) {
    super('ExecutorStartFailed', 503, `executor ${executorId} did not start: ${why}${logs ? `\n--- last container log lines ---\n${logs}` : ''}`, { executorId }, true);
  }
}

/**
 * Executors as containers, through dockerode against Docker Engine or Podman's compatible API.
 * All state lives in the engine (labels, and the token in the container's env), so a restarted
 * control plane lists and adopts what an earlier one started. The agent is reached on the
 * container's address in the executor network, with no published port: this presumes the
 * control plane runs on the engine's host (or is routed into that network).
 */
export class DockerPlatform implements Platform {
  readonly kind = 'docker';
  private readonly docker: Docker;
  private engine: Promise<EngineInfo> | undefined;
  private readonly networks = new Map<string, Promise<void>>();

  constructor(private readonly opts: DockerPlatformOptions) {
    this.docker = dockerClient(opts.host);
  }

  async start(template: Template, executorId: string): Promise<ExecutorHandle> {
    const info = await this.info();
    await this.requireImage(template.image);
    const network = await this.networkFor(template);
    const token = randomBytes(24).toString('base64url');
    const seccomp = { path: this.opts.seccompProfile, json: info.flavour === 'docker' ? await readFile(this.opts.seccompProfile, 'utf8') : '' };
    // The control plane (on the engine's host) reaches containers from the bridge's gateway
    // address, so that is the one proxy whose PROXY lines an executor believes.
    const nfs = this.opts.nfs ? { trustedProxies: await networkGateways(this.docker, network) } : undefined;
    const options = executorContainerOptions({ template, executorId, deployment: this.opts.deployment, token, network, flavour: info.flavour, seccomp, hostCpus: info.cpus, ...(nfs ? { nfs } : {}) });
    const container = await this.docker.createContainer(options);
    try {
      await container.start();
      const handle = this.handle(await container.inspect(), info);
      if (!handle) throw new ExecutorStartError(executorId, `the container has no address in network ${network}`, await containerTail(this.docker, container.id));
      await this.waitReady(container.id, handle);
      return handle;
    } catch (err) {
      // A half-started executor is removed, never left for the keeper to trip over.
      await removeContainer(container).catch((e: Error) => {
        throw new ExecutorStartError(executorId, `${(err as Error).message}; removing the container failed too: ${e.message}`, '');
      });
      throw err;
    }
  }

  async stop(executorId: string): Promise<void> {
    // Found by label, so another deployment's container or a made-up id is a no-op.
    for (const c of await this.containers({ executor: executorId })) {
      const container = this.docker.getContainer(c.Id);
      await container.stop({ t: 5 }).catch((err: { statusCode?: number }) => {
        // 304: already stopped, 404: already gone; both fine. Anything else surfaces.
        if (err.statusCode !== 304 && err.statusCode !== 404) throw err;
      });
      await removeContainer(container);
    }
  }

  async list(): Promise<ExecutorHandle[]> {
    const info = await this.info();
    const out: ExecutorHandle[] = [];
    for (const c of await this.containers({ running: true })) {
      const handle = await this.docker
        .getContainer(c.Id)
        .inspect()
        .then((details) => this.handle(details, info))
        // Removed between list and inspect: not running any more.
        .catch((err: { statusCode?: number }) => (err.statusCode === 404 ? undefined : Promise.reject(err as Error)));
      if (handle) out.push(handle);
    }
    return out;
  }

  async close(): Promise<void> {
    // dockerode keeps no connection open between calls.
  }

  private info(): Promise<EngineInfo> {
    this.engine ??= engineInfo(this.docker).catch((err: Error) => {
      this.engine = undefined;
      throw new KilnError('RuntimeUnavailable', 503, `cannot reach the container engine at ${this.opts.host} (KILN_DOCKER_HOST / DOCKER_HOST): ${err.message}`, {}, true);
    });
    return this.engine;
  }

  /** Images are built (images/build.sh) or pulled by the operator; a missing one is a clear error. */
  private async requireImage(image: string): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      throw new KilnError('ImageNotFound', 503, `image ${image} is not on the engine at ${this.opts.host}; build it with \`bash images/build.sh\` or pull it there`, { image });
    }
  }

  /**
   * Templates without network get the internal network (no route off the host); templates with
   * `network: "outbound"` need a NATed bridge, a second network `<name>-outbound`.
   */
  private networkFor(template: Template): Promise<string> {
    const base = this.opts.network ?? defaultNetworkName(this.opts.deployment);
    const outbound = networkPolicy(template.network).outbound;
    const name = outbound ? `${base}-outbound` : base;
    let ready = this.networks.get(name);
    if (!ready) {
      ready = ensureNetwork(this.docker, name, this.opts.deployment, !outbound);
      this.networks.set(name, ready);
      // The caller below gets the error; forgetting the promise makes the next start retry.
      void ready.catch(() => this.networks.delete(name));
    }
    return ready.then(() => name);
  }

  private containers(filter: { executor?: string; running?: boolean }): Promise<Docker.ContainerInfo[]> {
    const labels = [`${LABELS.deployment}=${this.opts.deployment}`];
    if (filter.executor !== undefined) labels.push(`${LABELS.executor}=${filter.executor}`);
    return this.docker.listContainers({ all: !filter.running, filters: { label: labels } });
  }

  /** The handle of a running container, rebuilt from the engine's record alone. */
  private handle(details: Docker.ContainerInspectInfo, info: EngineInfo): ExecutorHandle | undefined {
    const labels = details.Config.Labels ?? {};
    const token = envValue(details.Config.Env, 'KILN_AGENT_TOKEN');
    const ip = Object.values(details.NetworkSettings.Networks ?? {}).find((n) => n.IPAddress)?.IPAddress;
    if (!details.State.Running || !ip || !token) return undefined;
    const deployment = labels[LABELS.deployment] ?? '';
    const template = labels[LABELS.template] ?? '';
    const executor = labels[LABELS.executor] ?? '';
    // Read back from the container, so adopted executors report NFS exactly as they were started.
    const nfsListen = envValue(details.Config.Env, 'KILN_NFS_LISTEN');
    const nfs = nfsListen && nfsListen !== 'off' ? { nfsHost: ip, nfsPort: NFS_PORT } : {};
    return { id: executor, template, address: `${ip}:${AGENT_PORT}`, token, host: info.host, labels: { deployment, template, executor }, ...nfs };
  }

  /** Polls the agent's Health (with the token) until it answers, the container exits, or time runs out. */
  private async waitReady(containerId: string, handle: ExecutorHandle): Promise<void> {
    const timeoutMs = this.opts.startTimeoutMs ?? 60_000;
    const deadline = Date.now() + timeoutMs;
    const agent = new Agent(handle);
    try {
      for (;;) {
        // A TCP probe first: a gRPC channel that met a closed port backs off for a second
        // before it tries again, which would add up to that much to every cold start.
        const answered = (await portOpen(handle.address)) && (await agent.health(2000).then(() => true, () => false));
        if (answered) return;
        const state = (await this.docker.getContainer(containerId).inspect()).State;
        if (!state.Running) throw new ExecutorStartError(handle.id, `the container exited with code ${state.ExitCode}`, await containerTail(this.docker, containerId));
        if (Date.now() > deadline) throw new ExecutorStartError(handle.id, `its agent did not answer within ${timeoutMs} ms (KILN_DOCKER_START_TIMEOUT_MS)`, await containerTail(this.docker, containerId));
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      agent.close();
    }
  }
}

/** True when something accepts TCP connections at host:port. */
function portOpen(address: string): Promise<boolean> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
    socket.setTimeout(1000);
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/**
 * Force-removes a container; 404 (already gone) is fine. Podman sometimes answers 500 "device
 * or resource busy" right after a stop, while conmon still holds the container's shm mount;
 * that clears within moments, so it is retried a few times before it surfaces.
 */
async function removeContainer(container: Docker.Container): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await container.remove({ force: true });
      return;
    } catch (err) {
      const e = err as { statusCode?: number; message?: string };
      if (e.statusCode === 404) return;
      if (attempt >= 10 || !/busy/i.test(e.message ?? '')) throw err;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}
