import { z } from '@hono/zod-openapi';
import { ErrorSchema } from '../schemas.js';

export const SessionIdParam = z.object({ id: z.string().min(1).max(100).openapi({ param: { name: 'id', in: 'path' }, example: 'ses_0f3c...' }) });

export const CreateSessionSchema = z
  .object({
    template: z.string().optional().openapi({ description: 'Template to lease a sandbox of (default nodejs)', example: 'nodejs' }),
    timeoutMs: z.number().int().min(1000).optional().openapi({ description: 'Lifetime from creation (default 3600000, at most 86400000)' }),
    idleTimeoutMs: z.number().int().min(1000).optional().openapi({ description: 'Ended after this long without API activity (default 600000)' }),
    env: z.record(z.string()).optional().openapi({ description: 'Environment of every process and terminal in the session' }),
    metadata: z.record(z.string()).optional().openapi({ description: 'Labels to filter GET /sessions by', example: { owner: 'alice' } }),
    resources: z
      .object({ memoryMB: z.number().int().positive(), diskMB: z.number().int().positive(), maxProcesses: z.number().int().positive(), maxOpenFiles: z.number().int().positive() })
      .partial()
      .strict()
      .optional()
      .openapi({ description: 'Upper bounds; sessions run in the template\'s pre-booted sandboxes, so these may not exceed the template\'s' }),
  })
  .strict()
  .openapi('CreateSession');

export const SessionSchema = z
  .object({
    id: z.string(),
    template: z.string(),
    status: z.literal('running'),
    createdAt: z.string(),
    expiresAt: z.string(),
    lastActivityAt: z.string(),
    timeoutMs: z.number(),
    idleTimeoutMs: z.number(),
    metadata: z.record(z.string()),
  })
  .openapi('Session');

export const ProcessRequestSchema = z
  .object({
    command: z.string().min(1, 'command must not be empty').openapi({ example: 'python3' }),
    args: z.array(z.string()).optional().openapi({ example: ['script.py'] }),
    cwd: z.string().optional().openapi({ description: 'Working directory inside the sandbox (default /workspace)' }),
    env: z.record(z.string()).optional(),
    stdin: z.string().optional().openapi({ description: 'Text written to the process\'s stdin, then closed' }),
    timeoutMs: z.number().int().min(1).max(3_600_000).optional().openapi({ description: 'Kills the process group after this long (default 300000 for run and stream; none for background processes)' }),
    maxOutputBytes: z.number().int().min(1).max(64 * 1024 * 1024).optional().openapi({ description: 'Per-stream output cap (default 1048576); beyond it output is dropped and `truncated` set' }),
  })
  .strict()
  .openapi('ProcessRequest');

export const ProcessResultSchema = z
  .object({
    pid: z.number(),
    exitCode: z.number(),
    signal: z.string(),
    stdout: z.string(),
    stderr: z.string(),
    durationMs: z.number(),
    truncated: z.boolean(),
    stdoutTruncated: z.boolean(),
    stderrTruncated: z.boolean(),
    timedOut: z.boolean(),
  })
  .openapi('ProcessResult');

export const ProcessInfoSchema = z
  .object({ pid: z.number(), command: z.string(), args: z.array(z.string()), running: z.boolean(), exitCode: z.number(), signal: z.string(), startedAt: z.string(), stdout: z.string(), stderr: z.string() })
  .openapi('ProcessInfo');

export const FileInfoSchema = z
  .object({ path: z.string(), name: z.string(), type: z.enum(['file', 'dir', 'symlink', 'other']), size: z.number(), mode: z.number(), modifiedAt: z.string(), symlinkTarget: z.string().optional() })
  .openapi('FileInfo');

export const ExecuteSchema = z
  .object({
    code: z.string().min(1, 'code must not be empty'),
    language: z.enum(['nodejs', 'python']).optional(),
    event: z.unknown().optional(),
    timeoutMs: z.number().int().min(100).max(900_000).optional(),
  })
  .strict()
  .openapi('SessionExecute');

export const sessionErrors = {
  400: { description: 'Invalid request or a path outside /workspace', content: { 'application/json': { schema: ErrorSchema } } },
  404: { description: 'Unknown session, file or process', content: { 'application/json': { schema: ErrorSchema } } },
  409: { description: 'Conflict', content: { 'application/json': { schema: ErrorSchema } } },
  503: { description: 'No capacity or Redis unavailable', content: { 'application/json': { schema: ErrorSchema } } },
};
