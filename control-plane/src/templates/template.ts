import { z } from 'zod';
import { RUNTIME_NAMES, runnerOf, type LambdaRuntime } from '../invocation/languages.js';
import { networkSchema } from './network.js';

/** Where executors run: the platform adapters (control-plane/src/platforms/). */
export const PLATFORMS = ['local', 'docker', 'kubernetes'] as const;
export type PlatformKind = (typeof PLATFORMS)[number];

export const templateSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, up to 63 characters'),
  description: z.string().max(1000).default(''),
  /** Image executors of this template run on the docker and kubernetes platforms. */
  image: z.string().min(1).max(512),
  /**
   * Where this template's executors run (the platform adapter that starts them: local processes,
   * Docker/Podman containers or Kubernetes pods); unset uses KILN_PLATFORM. Lets one deployment
   * run, say, most templates as local processes and one in containers.
   */
  platform: z.enum(PLATFORMS).optional(),
  /** Deprecated: the old name of `platform`, accepted on input and stored as `platform` (withPlatform). */
  executor: z.enum(PLATFORMS).optional(),
  runtimes: z.array(z.enum(RUNTIME_NAMES)).min(1).max(8),
  resources: z
    .object({
      cpu: z.number().positive().max(64).default(1),
      memoryMB: z.number().int().min(32).max(65536).default(256),
      diskMB: z.number().int().min(16).max(1048576).default(512),
      maxProcesses: z.number().int().min(8).max(65536).default(256),
      maxOpenFiles: z.number().int().min(64).max(1048576).default(1024),
    })
    .default({}),
  network: networkSchema.default('none'),
  pool: z
    .object({
      minIdle: z.number().int().min(0).max(1024).default(1),
      maxSandboxes: z.number().int().min(1).max(4096).default(32),
      sandboxesPerExecutor: z.number().int().min(1).max(4096).default(32),
      idleTtlMs: z.number().int().min(1000).max(7 * 24 * 3_600_000).default(600_000),
      maxLifetimeMs: z.number().int().min(1000).max(30 * 24 * 3_600_000).default(3_600_000),
    })
    .default({}),
  queue: z.object({ maxWaiting: z.number().int().min(1).max(1_000_000).default(10_000) }).default({}),
  /**
   * Code contexts (sessions' /contexts and /code) started with every sandbox of the template,
   * its warm pool's included, so that a session's first cell does not wait for its kernel.
   */
  interpreter: z
    .object({ prestart: z.array(z.enum(['python', 'javascript'])).max(2).default([]) })
    .strict()
    .optional(),
  /**
   * The longest `timeoutMs` a session of this template may ask for (default 24 h). Paused time
   * does not count against it (sessions/lifecycle.ts).
   */
  maxSessionTimeoutMs: z
    .number()
    .int()
    .min(1000)
    .max(365 * 24 * 3_600_000)
    .optional(),
  /**
   * Set by Kiln (epoch ms) when a change alters what sandboxes are made of (image, platform,
   * runtimes, resources, network): sandboxes created before it are recycled as soon as they are
   * idle, so none keeps serving with the old settings.
   */
  revisedAt: z.number().int().min(0).optional(),
});

export type Template = z.infer<typeof templateSchema>;

/** What a sandbox is made of: a change here makes every existing sandbox of the template stale. */
export function sandboxShape(t: Template): string {
  return JSON.stringify([t.image, t.platform ?? '', [...t.runtimes].sort(), t.resources, t.network]);
}

/**
 * A template as Kiln keeps it: the deprecated `executor` field becomes `platform` (which wins
 * when both are given), so a template written for an older Kiln keeps its platform and nothing
 * past this point reads the old name. Applied wherever a template enters: files, Redis, the API.
 */
export function withPlatform(t: Template): Template {
  const { executor, ...rest } = t;
  return executor !== undefined && rest.platform === undefined ? { ...rest, platform: executor } : rest;
}

/** The sandbox runners a template's executors must offer. */
export function templateRunners(t: Template): string[] {
  return [...new Set(t.runtimes.map((r: LambdaRuntime) => runnerOf(r)))];
}
