import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln, type Kiln } from '@kiln/control-plane/server';

const REPO_TEMPLATES = fileURLToPath(new URL('../../../templates', import.meta.url));

export interface TestKiln {
  url: string;
  kiln: Kiln;
  prefix: string;
  dataDir: string;
  redis: Redis;
  /** POST/GET JSON helper that returns status, headers and the parsed body. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any; headers: Headers }>;
  stop(): Promise<void>;
}

type TemplateOverrides = Record<string, { pool?: Record<string, number>; resources?: Record<string, number> } | null>;

/**
 * A real control plane for one test file: its own Redis key prefix and queues on the shared
 * test Redis, its own data dir, executors and port. `templates` overrides pool sizes (null
 * drops a template) so tests boot only what they use. `stop` removes everything it made.
 */
export async function startTestKiln(opts: { templates?: TemplateOverrides; env?: Record<string, string> } = {}): Promise<TestKiln> {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-test-'));
  // Sandboxes run as their own host uids, which must be able to reach their directories.
  chmodSync(dataDir, 0o755);
  const templatesDir = join(dataDir, 'templates');
  rmSync(templatesDir, { recursive: true, force: true });
  mkdirSync(templatesDir, { recursive: true });
  const overrides = opts.templates ?? { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null };
  for (const file of readdirSync(REPO_TEMPLATES).filter((f) => f.endsWith('.json'))) {
    const name = file.slice(0, -5);
    const o = overrides[name];
    if (o === null) continue;
    const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, file), 'utf8'));
    Object.assign(t.pool, o?.pool ?? {});
    Object.assign(t.resources, o?.resources ?? {});
    writeFileSync(join(templatesDir, file), JSON.stringify(t));
  }
  const socket = inject('redisSocket');
  const config = loadConfig({
    KILN_REDIS_URL: `unix://${socket}`,
    KILN_REDIS_PREFIX: prefix,
    KILN_HOST: '127.0.0.1',
    KILN_PORT: '0',
    KILN_DATA_DIR: dataDir,
    KILN_TEMPLATES_DIR: templatesDir,
    KILN_LOG_LEVEL: 'warn',
    ...opts.env,
  });
  const kiln = await startKiln(config);
  const redis = new Redis({ path: socket });
  const call: TestKiln['call'] = async (method, path, body, headers = {}) => {
    const res = await fetch(kiln.url + path, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON; the raw text is the body
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return {
    url: kiln.url,
    kiln,
    prefix,
    dataDir,
    redis,
    call,
    async stop() {
      await kiln.stop({ stopExecutors: true });
      await deleteKeys(redis, `${prefix}:*`);
      redis.disconnect();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}
