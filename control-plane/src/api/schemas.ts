import { z } from '@hono/zod-openapi';
import { ExecutionRecordSchema, LambdaErrorSchema } from '../invocation/contract.js';
import { LANGUAGE_NAMES } from '../invocation/languages.js';

// The job contract's schemas are the API's: one definition (invocation/contract.ts).
export { ExecutionRecordSchema, LambdaErrorSchema };

/**
 * `Idempotency-Key` of asynchronous invocations: the same key (within the same function, or
 * among ad-hoc executions) during the result TTL is the same invocation: its id comes back
 * and it runs once. Synchronous invocations run at most once and need none.
 */
export const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .optional()
    .openapi({ param: { name: 'idempotency-key', in: 'header' }, description: 'Idempotency-Key (header names are case-insensitive), asynchronous invocations only (`wait: false`, `type=Event`): retried submissions with the same key are one invocation (1-256 printable ASCII characters, kept for KILN_RESULT_TTL_SECONDS)' }),
});

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'InvalidRequest' }),
      message: z.string().openapi({ example: 'timeoutMs must be at most 900000; got 1000000' }),
      data: z.record(z.unknown()).optional(),
    }),
  })
  .openapi('Error');

export const ExecutionRequestSchema = z
  .object({
    code: z.string().min(1, 'code must not be empty').openapi({ example: 'exports.handler = async (e) => ({ sum: e.a + e.b })' }),
    language: z.enum(LANGUAGE_NAMES).openapi({ description: 'Handler language: `nodejs` (exports.handler) or `python` (def handler(event, context))' }),
    event: z.unknown().optional().openapi({ example: { a: 1, b: 2 } }),
    timeoutMs: z.number().int().min(100).optional().openapi({ description: 'Handler timeout in milliseconds (default 3000)', example: 3000 }),
    wait: z.boolean().optional().openapi({ description: 'false: return 202 with the id at once and poll GET /executions/{id}' }),
    template: z.string().optional().openapi({ description: 'Template to run on (default: the language\'s own)' }),
    env: z.record(z.string()).optional().openapi({ description: 'Environment variables for the handler' }),
  })
  .strict()
  .openapi('ExecutionRequest');

export const HealthSchema = z
  .object({
    status: z.enum(['ok', 'degraded']),
    redis: z.object({ ok: z.boolean(), latencyMs: z.number().optional(), error: z.string().optional() }),
    executors: z.array(
      z.object({
        id: z.string(),
        template: z.string(),
        ok: z.boolean(),
        sandboxes: z.number().optional(),
        /**
         * How the executor bounds each sandbox's memory, tasks and CPU: a cgroup per sandbox, or
         * `none` when it cannot create cgroups (only its container's limits apply).
         */
        limits: z.enum(['cgroup-v1', 'cgroup-v2', 'none']).optional().openapi({ description: 'cgroup-v1 | cgroup-v2: a cgroup per sandbox; none: the executor cannot create cgroups, only its container limits apply' }),
        limitsDetail: z.string().optional().openapi({ description: 'Where the sandbox cgroups are, or why there are none' }),
        workspaceFs: z.enum(['ext4-image', 'none']).optional().openapi({ description: 'ext4-image: every /workspace is its own filesystem of diskMB; none: plain directories, no hard size on this executor' }),
        workspaceFsDetail: z.string().optional().openapi({ description: 'Where the images are, or what the executor lacks to mount them' }),
        error: z.string().optional(),
      }),
    ),
  })
  .openapi('Health');

/** `Idempotency-Key` on a create (api/idempotent-create.ts). */
export const CreateIdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .optional()
    .openapi({
      param: { name: 'idempotency-key', in: 'header' },
      description:
        'Makes a retried create one resource: the same key and body within 24 hours answer the first result again (Idempotent-Replayed: true); the same key with another body is 422 IdempotencyKeyReused, and while the first is still running 409 IdempotencyKeyInProgress. Keys are per tenant; 1-256 printable ASCII characters',
    }),
});
