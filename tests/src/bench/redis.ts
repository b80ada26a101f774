import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRedisServer } from '../support/redis-server.js';

/** A private redis-server on a unix socket for one benchmark run, with AOF on as Kiln runs it. */
export async function startRedis(): Promise<{ socket: string; stop: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-redis-'));
  const server = await startRedisServer(dir, { appendOnly: true });
  return {
    socket: server.socket,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
