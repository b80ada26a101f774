import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { spawn, type ChildProcess } from 'node:child_process';
import { inject } from 'vitest';
import { loadConfig } from '@kiln/control-plane/config';
import { startKiln, type Kiln } from '@kiln/control-plane/server';
import { unmountBelow } from '../../../executor/dist/sandbox/mounts.js';

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

/** Templates a test gets only when its overrides name them (the others are there unless set to null). */
const OPT_IN = new Set(['code-interpreter']);

type TemplateOverrides = Record<string, { pool?: Record<string, number>; resources?: Record<string, number>; queue?: Record<string, number> } | null>;

/**
 * A real control plane for one test file: its own Redis key prefix and queues on the shared
 * test Redis, its own data dir, executors and port. `templates` overrides pool sizes (null
 * drops a template) so tests boot only what they use. `stop` removes everything it made.
 */
export async function startTestKiln(opts: { templates?: TemplateOverrides; env?: Record<string, string>; redisSocket?: string; prefix?: string } = {}): Promise<TestKiln> {
  // `prefix`: the Redis keys of a Kiln started before (a restart of the same deployment).
  const prefix = opts.prefix ?? `t${randomBytes(4).toString('hex')}`;
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
    if (o === null || (OPT_IN.has(name) && !(name in overrides))) continue;
    const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, file), 'utf8'));
    Object.assign(t.pool, o?.pool ?? {});
    Object.assign(t.resources, o?.resources ?? {});
    Object.assign(t.queue, o?.queue ?? {});
    writeFileSync(join(templatesDir, file), JSON.stringify(t));
  }
  const socket = opts.redisSocket ?? inject('redisSocket');
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
      await removeDataDir(dataDir);
    },
  };
}

/**
 * Deletes a test's data dir. Workspaces are filesystems mounted below it: an executor a test
 * killed (SIGKILL) leaves them mounted, and `rm -r` would fail with EBUSY on each.
 */
export async function removeDataDir(dir: string): Promise<void> {
  await unmountBelow(dir);
  rmSync(dir, { recursive: true, force: true });
}

async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

/** A data dir (mode 755, sandboxes reach it) with a templates dir written from the repo's templates and overrides. */
export function testDirs(overrides: TemplateOverrides): { dataDir: string; templatesDir: string } {
  const dataDir = mkdtempSync(join(tmpdir(), 'kiln-test-'));
  chmodSync(dataDir, 0o755);
  const templatesDir = join(dataDir, 'templates');
  mkdirSync(templatesDir, { recursive: true });
  for (const file of readdirSync(REPO_TEMPLATES).filter((f) => f.endsWith('.json'))) {
    const name = file.slice(0, -5);
    const o = overrides[name];
    if (o === null || (OPT_IN.has(name) && !(name in overrides))) continue;
    const t = JSON.parse(readFileSync(join(REPO_TEMPLATES, file), 'utf8'));
    Object.assign(t.pool, o?.pool ?? {});
    Object.assign(t.resources, o?.resources ?? {});
    Object.assign(t.queue, o?.queue ?? {});
    writeFileSync(join(templatesDir, file), JSON.stringify(t));
  }
  return { dataDir, templatesDir };
}

const CONTROL_PLANE_MAIN = fileURLToPath(new URL('../../../control-plane/dist/main.js', import.meta.url));

/** A control plane as a real `node control-plane/dist/main.js` process. */
export interface KilnProcess {
  url: string;
  child: ChildProcess;
  /** Everything it wrote to stderr (its JSON log), for failure messages. */
  log(): string;
  /**
   * Sends a signal and waits for the process to exit. The default, SIGINT, is Ctrl-C: it stops
   * the executors too (KILN_STOP_EXECUTORS_ON_EXIT=interrupt); SIGTERM leaves them to the next
   * control plane.
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `node control-plane/dist/main.js` with the given KILN_* variables and waits for its ready
 * line. `inherit` hands the process extra open fds (fd number → an fd of ours), as a shell would.
 */
export async function startKilnProcess(env: Record<string, string>, inherit: Record<number, number> = {}): Promise<KilnProcess> {
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'pipe', 'pipe'];
  for (const [target, fd] of Object.entries(inherit).sort(([a], [b]) => Number(a) - Number(b))) {
    while (stdio.length < Number(target)) stdio.push('ignore');
    stdio.push(fd);
  }
  const child = spawn(process.execPath, [CONTROL_PLANE_MAIN], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', KILN_HOST: '127.0.0.1', KILN_PORT: '0', KILN_LOG_LEVEL: 'warn', ...env },
    stdio,
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`control plane did not start in 30 s: ${stderr}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /ready at (http:\/\/\S+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`control plane exited with ${code}: ${stderr}`));
    });
  });
  return {
    url,
    child,
    log: () => stderr,
    async kill(signal = 'SIGINT') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/**
 * Stops a control plane from `startKilnProcess` and removes what it left: its Redis keys
 * (`prefix`) and its data dir (from `testDirs`). Each argument may be missing (a failed start).
 */
export async function disposeKilnProcess(kiln: KilnProcess | undefined, prefix: string | undefined, dataDir: string | undefined): Promise<void> {
  await kiln?.kill();
  if (prefix) {
    const redis = new Redis({ path: inject('redisSocket') });
    await deleteKeys(redis, `${prefix}:*`);
    redis.disconnect();
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

/**
 * Creates a session (template `nodejs` unless `body` names another), runs `fn` with its id and
 * deletes the session afterwards, whatever happened.
 */
export async function inSession<T>(k: TestKiln, fn: (id: string) => Promise<T>, body: Record<string, unknown> = {}): Promise<T> {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', ...body });
  if (res.status !== 201) throw new Error(`could not create a session: ${res.status} ${JSON.stringify(res.body)}`);
  const id = res.body.id as string;
  try {
    return await fn(id);
  } finally {
    await k.call('DELETE', `/api/v1/sessions/${id}`);
  }
}

/**
 * One deployment run as real control-plane processes one after another (restart tests): its own
 * Redis prefix and directories, the env each `startKilnProcess` of it takes, a Redis client, a
 * caller with its key, and `cleanup`, which stops what is left (the control plane, executors it
 * left running, keys, directories).
 */
export function processDeployment(templates: TemplateOverrides, key: string, extra: Record<string, string> = {}) {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const dirs = testDirs(templates);
  const env: Record<string, string> = {
    KILN_REDIS_URL: `unix://${inject('redisSocket')}`,
    KILN_REDIS_PREFIX: prefix,
    KILN_DATA_DIR: dirs.dataDir,
    KILN_TEMPLATES_DIR: dirs.templatesDir,
    ...extra,
  };
  const redis = new Redis({ path: inject('redisSocket') });
  return {
    prefix,
    dirs,
    env,
    redis,
    /** A request to `cp` with the deployment's key; the body parsed when there is one. */
    async call(cp: KilnProcess | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
      const res = await fetch(`${cp?.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async cleanup(cp: KilnProcess | undefined): Promise<void> {
      await cp?.kill('SIGINT');
      const states = join(dirs.dataDir, 'executors');
      for (const f of existsSync(states) ? readdirSync(states, { withFileTypes: true }).filter((e) => e.name.endsWith('.json')) : []) {
        const { pid } = JSON.parse(readFileSync(join(states, f.name), 'utf8')) as { pid: number };
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await deleteKeys(redis, `${prefix}:*`);
      redis.disconnect();
      await removeDataDir(dirs.dataDir);
    },
  };
}
