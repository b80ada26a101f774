import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const SERVICE = join(REPO, 'scripts/podman/service.sh');

/**
 * Throws, failing the test file, when Podman cannot run here: `npm test` installs it
 * (scripts/setup.sh), so a missing Podman is a broken setup, never a reason to skip.
 */
export function requirePodman(): void {
  const reason = podmanUnavailable();
  if (reason) throw new Error(`the docker and kubernetes platform tests need Podman: ${reason}`);
}

/** Why the docker platform cannot be tested on this machine, or undefined when it can. */
export function podmanUnavailable(): string | undefined {
  try {
    execFileSync('podman', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'podman is not installed (scripts/setup.sh installs it with scripts/podman/install.sh unless KILN_SKIP_PODMAN=1)';
  }
  const maxUserNs = readFileSync('/proc/sys/user/max_user_namespaces', 'utf8').trim();
  if (maxUserNs === '0') return 'user namespaces are disabled (user.max_user_namespaces=0); bubblewrap cannot run in containers';
  return undefined;
}

/** A private Podman API service for one test file, on a socket in its own tmp dir. */
export interface PodmanService {
  /** DOCKER_HOST form: unix:///tmp/.../podman.sock */
  host: string;
  socket: string;
  docker: Docker;
  /** CONTAINERS_CONF for the `podman` CLI, so it sees the same store and settings. */
  containersConf: string;
  stop(): Promise<void>;
}

/**
 * Starts `podman system service` through scripts/podman/service.sh with its files in a tmp
 * dir (so test files never share or stop someone else's service), and makes sure the images
 * of `templates` are built and current: images/build.sh is a no-op (a few seconds) when they
 * are, and the first build on a fresh machine (minutes, offline via debootstrap) happens here.
 * The build runs under /tmp/kiln-images.lock because two builds at once fight over the cache.
 */
export async function startPodman(opts: { templates: string[] }): Promise<PodmanService> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-podman-'));
  const env = { ...process.env, KILN_PODMAN_DIR: dir };
  const containersConf = join(dir, 'containers.conf');
  try {
    await run(
      'flock',
      ['/tmp/kiln-images.lock', 'bash', join(REPO, 'images/build.sh'), '--skip-npm-build', '--only', ['executor', ...opts.templates].join(',')],
      {
        cwd: REPO,
        env: { ...process.env, CONTAINERS_CONF: process.env.CONTAINERS_CONF ?? join(REPO, 'infra/podman/containers.conf') },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`images/build.sh failed: ${e.message}\n${(e.stderr ?? '').slice(-4000)}`);
  }
  try {
    const { stdout } = await run('bash', [SERVICE, 'start'], { env });
    const socket = stdout.trim().split('\n').pop() as string;
    const docker = new Docker({ socketPath: socket });
    return {
      host: `unix://${socket}`,
      socket,
      docker,
      containersConf,
      async stop() {
        await run('bash', [SERVICE, 'stop'], { env });
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`could not start the podman service: ${e.message}\n${e.stderr ?? ''}`);
  }
}

/** Containers (any state) carrying the label `kiln.deployment=<deployment>`. */
export async function containersOf(docker: Docker, deployment: string): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [`kiln.deployment=${deployment}`] } });
}

/** Removes a deployment's containers and networks, for `finally` blocks after a failure. */
export async function removeDeployment(docker: Docker, deployment: string): Promise<void> {
  for (const c of await containersOf(docker, deployment)) {
    // Podman can answer "device or resource busy" right after a stop; it clears in moments.
    for (let attempt = 1; ; attempt++) {
      try {
        await docker.getContainer(c.Id).remove({ force: true });
        break;
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) break;
        if (attempt >= 10) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }
  for (const n of await docker.listNetworks({ filters: { label: [`kiln.deployment=${deployment}`] } })) await docker.getNetwork(n.Id).remove();
}
