import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startRedisServer } from './redis-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Unix socket of the real redis-server every test shares (each with its own key prefix). */
    redisSocket: string;
  }
}

/** Starts one real redis-server for the whole run; stopped (and its files removed) at the end. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-test-redis-'));
  const server = await startRedisServer(dir);
  project.provide('redisSocket', server.socket);
  return async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
