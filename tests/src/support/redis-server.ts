import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A redis-server child listening on a unix socket only. */
export interface RedisServer {
  /** `<dir>/redis.sock`. */
  socket: string;
  /** Stops the server and waits for it to exit; its files stay in `dir` (the caller owns it). */
  stop(): Promise<void>;
}

export interface RedisServerOptions {
  /**
   * Append-only persistence, as Kiln's embedded Redis runs it (`everysec`). Off by default:
   * most tests only need a Redis, not its durability.
   */
  appendOnly?: boolean;
}

/** How long a start may take before it is reported as failed (200 × 25 ms). */
const START_TRIES = 200;
const START_PAUSE_MS = 25;

/**
 * Starts a real redis-server with its socket and files in `dir` (no TCP port, no RDB
 * snapshots) and resolves once it answers PING. Starting it again on the same `dir` after
 * `stop()` brings back what the AOF kept, which the Redis outage test relies on.
 */
export async function startRedisServer(dir: string, opts: RedisServerOptions = {}): Promise<RedisServer> {
  const socket = join(dir, 'redis.sock');
  const args = ['--port', '0', '--unixsocket', socket, '--dir', dir, '--save', ''];
  args.push('--appendonly', opts.appendOnly ? 'yes' : 'no', '--appendfsync', 'everysec');
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitForPing(child, socket);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  return {
    socket,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitForPing(child: ChildProcess, socket: string): Promise<void> {
  for (let i = 0; i < START_TRIES; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with status ${child.exitCode} while starting; is another server using ${socket}?`);
    const client = new Redis({ path: socket, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    // Connection refusals are expected until the server listens; the loop retries them.
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, START_PAUSE_MS));
    } finally {
      client.disconnect();
    }
  }
  throw new Error(`redis-server did not answer on ${socket} within ${(START_TRIES * START_PAUSE_MS) / 1000} s; is redis-server installed (scripts/setup.sh)?`);
}
