import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Unix socket of the real redis-server every test shares (each with its own key prefix). */
    redisSocket: string;
  }
}

async function waitForSocket(child: ChildProcess, socket: string): Promise<void> {
  const { Redis } = await import('ioredis');
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error('redis-server exited during test setup');
    const client = new Redis({ path: socket, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return;
    } catch {
      client.disconnect();
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error('redis-server did not start');
}

/** Starts one real redis-server for the whole run; stopped (and its files removed) at the end. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-test-redis-'));
  const socket = join(dir, 'redis.sock');
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await waitForSocket(child, socket);
  project.provide('redisSocket', socket);
  return async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  };
}
