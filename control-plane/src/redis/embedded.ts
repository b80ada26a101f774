import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { log } from '../log.js';

export interface EmbeddedRedis {
  /** Unix socket path to connect to. */
  socket: string;
  stop(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function ping(socket: string): Promise<boolean> {
  const client = new Redis({ path: socket, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  // A refused probe is the answer we are asking for, not an error to report.
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * Starts (or adopts, after a crash) a redis-server child with append-only persistence under
 * `dir`, listening only on a unix socket. It runs in its own process group so that Ctrl-C in
 * a terminal reaches the control plane first, which stops Redis last.
 */
export async function startEmbeddedRedis(dir: string): Promise<EmbeddedRedis> {
  await mkdir(dir, { recursive: true });
  const socket = join(dir, 'redis.sock');
  const pidFile = join(dir, 'redis.pid');
  if (existsSync(pidFile)) {
    const pid = Number(await readFile(pidFile, 'utf8'));
    if (pid && alive(pid) && (await ping(socket))) {
      log('info', 'adopted the embedded redis-server left running by an earlier control plane', { pid, socket });
      return { socket, stop: () => stopPid(pid) };
    }
  }
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--pidfile', pidFile, '--save', '', '--daemonize', 'no', '--loglevel', 'warning'],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited at start: ${stderr.trim()}`);
    if (await ping(socket)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!(await ping(socket))) throw new Error(`redis-server did not answer on ${socket}: ${stderr.trim()}`);
  return {
    socket,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 200 && alive(pid); i++) await new Promise((r) => setTimeout(r, 25));
}
