import { z } from 'zod';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const schema = z.object({
  /** Redis to use; empty starts an embedded redis-server with AOF under KILN_DATA_DIR. */
  KILN_REDIS_URL: z.string().url().optional(),
  /** Prefix of every Redis key and BullMQ queue, so several deployments (or tests) share one Redis. */
  KILN_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9:_-]+$/).default('kiln'),
  KILN_HOST: z.string().default('0.0.0.0'),
  KILN_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  KILN_DATA_DIR: z.string().default(join(REPO_ROOT, '.kiln')),
  KILN_TEMPLATES_DIR: z.string().default(join(REPO_ROOT, 'templates')),
  /** Which runtime adapter starts executors. */
  KILN_RUNTIME: z.enum(['local']).default('local'),
  /** Largest request body accepted by the REST API, in bytes (Lambda's sync limit is 6 MB). */
  KILN_MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(6 * 1024 * 1024),
  /** Execution records are kept this long after they finish. */
  KILN_RESULT_TTL_SECONDS: z.coerce.number().int().min(1).default(3600),
  /** Default and largest handler timeouts. */
  KILN_DEFAULT_TIMEOUT_MS: z.coerce.number().int().min(100).default(3000),
  KILN_MAX_TIMEOUT_MS: z.coerce.number().int().min(1000).default(900_000),
  /** Stop executors when the control plane stops (local runtime); off lets a restart adopt them. */
  KILN_STOP_EXECUTORS_ON_EXIT: z.enum(['true', 'false']).default('true'),
  KILN_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
});

export type Config = {
  redisUrl: string | undefined;
  prefix: string;
  host: string;
  port: number;
  dataDir: string;
  templatesDir: string;
  runtime: 'local';
  maxBodyBytes: number;
  resultTtlSeconds: number;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  stopExecutorsOnExit: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  repoRoot: string;
};

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`invalid configuration: ${variable}: ${detail}`);
    this.name = 'ConfigError';
  }
}

/** Raw env → defaults → validated config. Empty strings count as unset. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('KILN_') && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue?.path[0] ?? 'KILN_*'), `${issue?.message ?? 'invalid'} (got "${String(cleaned[String(issue?.path[0])] ?? '')}")`);
  }
  const e = parsed.data;
  return {
    redisUrl: e.KILN_REDIS_URL,
    prefix: e.KILN_REDIS_PREFIX,
    host: e.KILN_HOST,
    port: e.KILN_PORT,
    dataDir: e.KILN_DATA_DIR,
    templatesDir: e.KILN_TEMPLATES_DIR,
    runtime: e.KILN_RUNTIME,
    maxBodyBytes: e.KILN_MAX_BODY_BYTES,
    resultTtlSeconds: e.KILN_RESULT_TTL_SECONDS,
    defaultTimeoutMs: e.KILN_DEFAULT_TIMEOUT_MS,
    maxTimeoutMs: e.KILN_MAX_TIMEOUT_MS,
    stopExecutorsOnExit: e.KILN_STOP_EXECUTORS_ON_EXIT === 'true',
    logLevel: e.KILN_LOG_LEVEL,
    repoRoot: REPO_ROOT,
  };
}
