import { z } from '@hono/zod-openapi';

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'InvalidRequest' }),
      message: z.string().openapi({ example: 'timeoutMs must be at most 900000; got 1000000' }),
      data: z.record(z.unknown()).optional(),
    }),
  })
  .openapi('Error');

export const LambdaErrorSchema = z
  .object({ errorType: z.string(), errorMessage: z.string(), stackTrace: z.array(z.string()) })
  .openapi('LambdaError');

export const ExecutionRequestSchema = z
  .object({
    code: z.string().min(1, 'code must not be empty').openapi({ example: 'exports.handler = async (e) => ({ sum: e.a + e.b })' }),
    language: z.enum(['nodejs', 'python']).openapi({ description: 'Handler language: `nodejs` (exports.handler) or `python` (def handler(event, context))' }),
    event: z.unknown().optional().openapi({ example: { a: 1, b: 2 } }),
    timeoutMs: z.number().int().min(100).optional().openapi({ description: 'Handler timeout in milliseconds (default 3000)', example: 3000 }),
    wait: z.boolean().optional().openapi({ description: 'false: return 202 with the id at once and poll GET /executions/{id}' }),
    template: z.string().optional().openapi({ description: 'Template to run on (default: the language\'s own)' }),
    env: z.record(z.string()).optional().openapi({ description: 'Environment variables for the handler' }),
  })
  .strict()
  .openapi('ExecutionRequest');

export const TimingsSchema = z.object({ queuedMs: z.number(), scheduleMs: z.number(), initMs: z.number(), handlerMs: z.number(), totalMs: z.number() }).openapi('Timings');

export const ExecutionRecordSchema = z
  .object({
    id: z.string().uuid(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'timeout']),
    result: z.unknown().optional(),
    resultBase64: z.string().optional(),
    error: LambdaErrorSchema.optional(),
    logs: z.string(),
    logsTruncated: z.boolean().optional(),
    durationMs: z.number(),
    startType: z.enum(['hot', 'warm', 'cold']).optional(),
    timings: TimingsSchema.optional(),
    maxMemoryMB: z.number().optional(),
    template: z.string(),
    createdAt: z.string(),
    finishedAt: z.string().optional(),
  })
  .openapi('Execution');

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
