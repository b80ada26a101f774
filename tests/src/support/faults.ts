import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { inject } from 'vitest';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln, type Kiln } from '@kiln/control-plane/server';
import { removeDataDir } from './kiln.js';

/** Polls `fn` every 100 ms until it holds; fails after `ms` saying what it waited for. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The local platform's executors of a data dir (id and pid), from their state files. */
export function executorPids(dataDir: string): Array<{ id: string; pid: number }> {
  const dir = join(dataDir, 'executors');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { id: string; pid: number });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Collects the log lines (JSON on stderr) of control planes running in this process, so a test
 * can count warnings. They still reach stderr. `stop` puts stderr back.
 */
export function captureLog(): { lines(msg: string): number; stop(): void } {
  const seen: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = (chunk: string | Uint8Array, ...rest: unknown[]) => {
    seen.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  };
  return {
    lines: (msg) =>
      seen
        .join('')
        .split('\n')
        .filter((l) => l.includes(`"msg":"${msg}`)).length,
    stop: () => {
      process.stderr.write = write;
    },
  };
}

/**
 * A control plane in this process on the test Redis with a given prefix and directories, so a
 * test can run several replicas of one deployment, or restart one on the same state.
 */
export async function startReplica(prefix: string, dirs: { dataDir: string; templatesDir: string }, env: Record<string, string> = {}): Promise<Kiln> {
  return startKiln(
    loadConfig({
      KILN_REDIS_URL: `unix://${inject('redisSocket')}`,
      KILN_REDIS_PREFIX: prefix,
      KILN_HOST: '127.0.0.1',
      KILN_PORT: '0',
      KILN_DATA_DIR: dirs.dataDir,
      KILN_TEMPLATES_DIR: dirs.templatesDir,
      KILN_LOG_LEVEL: 'warn',
      ...env,
    }),
  );
}

/** POSTs or GETs JSON against a control plane. */
export async function call(url: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/**
 * Removes a deployment a test started with `startReplica`: its replicas still running (each
 * stopped by `stop`), any executor they left, its Redis keys and its state directory; then
 * closes `redis`, the test's own connection.
 */
export async function removeDeployment(prefix: string, dirs: { dataDir: string }, redis: Redis, stop: () => Promise<void>): Promise<void> {
  await stop();
  for (const e of executorPids(dirs.dataDir)) if (alive(e.pid)) process.kill(e.pid, 'SIGKILL');
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await removeDataDir(dirs.dataDir);
}
