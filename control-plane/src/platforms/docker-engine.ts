import Docker from 'dockerode';
import type { EngineFlavour } from './docker-options.js';

/**
 * A dockerode client for `unix:///path.sock`, `tcp://host:port` or `http://host:port`
 * (DOCKER_HOST's forms). The same client drives Docker Engine and Podman's compatible API.
 */
export function dockerClient(host: string): Docker {
  const url = new URL(host);
  if (url.protocol === 'unix:') return new Docker({ socketPath: decodeURIComponent(url.pathname) });
  if (url.protocol === 'tcp:' || url.protocol === 'http:') return new Docker({ host: url.hostname, port: Number(url.port || 2375), protocol: 'http' });
  throw new Error(`KILN_DOCKER_HOST must be unix:///path/to/docker.sock or tcp://host:port; got "${host}"`);
}

/** What the runtime learns from the engine once: its flavour, host name and CPU count. */
export interface EngineInfo {
  flavour: EngineFlavour;
  /** The engine host's name, reported as `ExecutorHandle.host` (image locality). */
  host: string;
  cpus: number;
}

/** Asks the engine who it is: Podman names a "Podman Engine" component in `GET /version`. */
export async function engineInfo(docker: Docker): Promise<EngineInfo> {
  const [version, info] = await Promise.all([docker.version(), docker.info() as Promise<{ Name?: string; NCPU?: number }>]);
  const components = (version as { Components?: { Name: string }[] }).Components ?? [];
  return {
    flavour: components.some((c) => /podman/i.test(c.Name)) ? 'podman' : 'docker',
    host: info.Name ?? 'docker',
    cpus: info.NCPU ?? 1,
  };
}

/**
 * Creates the executor network unless it exists. `internal` networks get no route out of the
 * host (no NAT, no forwarding), which is what keeps an external Redis or any other service on
 * the LAN out of reach of executors; the host itself stays reachable on the bridge's gateway
 * address, which is why Redis must listen on a unix socket or loopback (README, "Runtimes").
 * Concurrent creators race: a "409 already exists" from the engine counts as success.
 */
export async function ensureNetwork(docker: Docker, name: string, deployment: string, internal: boolean): Promise<void> {
  const existing = await docker.listNetworks({ filters: { name: [name] } });
  if (existing.some((n) => n.Name === name)) return;
  try {
    await docker.createNetwork({ Name: name, Driver: 'bridge', Internal: internal, Labels: { 'kiln.deployment': deployment }, CheckDuplicate: true });
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 409) throw err;
  }
}

/**
 * The bridge's gateway addresses of a network: where the engine's host (and so a control plane
 * running there, e.g. its NFS gateway) appears to containers. Empty when the engine reports none.
 */
export async function networkGateways(docker: Docker, name: string): Promise<string[]> {
  const info = (await docker.getNetwork(name).inspect()) as { IPAM?: { Config?: { Gateway?: string }[] } };
  return (info.IPAM?.Config ?? []).map((c) => c.Gateway ?? '').filter((g) => g !== '');
}

/**
 * The last lines a container wrote, for error messages. Without a TTY the engine multiplexes
 * stdout and stderr into frames (8-byte header: stream, 3 zero bytes, big-endian length).
 */
export async function containerTail(docker: Docker, id: string, lines = 20): Promise<string> {
  try {
    const raw = await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, tail: lines });
    return demux(Buffer.from(raw)).trimEnd();
  } catch (err) {
    return `(could not read the container's logs: ${(err as Error).message})`;
  }
}

function demux(buf: Buffer): string {
  const parts: Buffer[] = [];
  let at = 0;
  while (at + 8 <= buf.length && buf[at + 1] === 0 && buf[at + 2] === 0 && buf[at + 3] === 0 && (buf[at] ?? 9) <= 2) {
    const size = buf.readUInt32BE(at + 4);
    parts.push(buf.subarray(at + 8, at + 8 + size));
    at += 8 + size;
  }
  // Not framed (a TTY, or an engine that sends raw text): take it as it is.
  return at === 0 ? buf.toString('utf8') : Buffer.concat(parts).toString('utf8');
}
