import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { stream } from 'hono/streaming';
import { CODE_LANGUAGES, type CodeInterpreterService } from '../../interpreter/service.js';
import { MIME_TYPES } from '../../interpreter/events.js';
import { ValidationError } from '../../errors.js';
import { log } from '../../log.js';
import { newRouter, type AppEnv } from '../router.js';
import { SessionIdParam, sessionErrors as errors } from './session-schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const body = <T extends z.ZodTypeAny>(schema: T, required = true) => ({ body: { required, content: { 'application/json': { schema } } } });

const LanguageSchema = z.string().min(1).max(40).openapi({ description: `One of ${CODE_LANGUAGES.join(', ')} (also python3, js, nodejs)`, example: 'python' });

const ContextSchema = z
  .object({
    id: z.string(),
    language: z.string().openapi({ example: 'python' }),
    cwd: z.string(),
    busy: z.boolean().openapi({ description: 'An execution is running' }),
    executionCount: z.number(),
    createdAt: z.string(),
  })
  .openapi('CodeContext');

const CreateContextSchema = z
  .object({
    language: LanguageSchema.optional().openapi({ description: 'Default python' }),
    cwd: z.string().min(1).max(4096).optional().openapi({ description: 'Working directory inside the sandbox (default /workspace)' }),
  })
  .strict()
  .openapi('CreateCodeContext');

const RunCodeSchema = z
  .object({
    code: z.string().max(1024 * 1024).openapi({ example: 'import pandas as pd\npd.DataFrame({"a": [1, 2]})' }),
    language: LanguageSchema.optional().openapi({ description: 'Runs in the session\'s default context of this language (its oldest; made on first use). Default python' }),
    contextId: z.string().min(1).max(100).optional().openapi({ description: 'Runs in this context instead (not with `language`)' }),
    timeoutMs: z.number().int().min(100).max(3_600_000).optional().openapi({ description: 'Interrupts the execution after this long (default 300000); a kernel that does not stop is restarted' }),
  })
  .strict()
  .openapi('RunCode');

const ContextParams = SessionIdParam.extend({ ctx: z.string().min(1).max(100).openapi({ param: { name: 'ctx', in: 'path' }, example: 'ctx_5d1e...' }) });

const EVENTS = `NDJSON, one event a line, as they happen:
- \`start\` {contextId, language}
- \`stdout\` / \`stderr\` {text}
- \`result\` {isMainResult, data}: a MIME bundle (${MIME_TYPES.map((m) => `\`${m}\``).join(', ')}); binary types are base64. \`isMainResult\` is the cell's value; the others are display outputs (matplotlib figures, display())
- \`error\` {name, value, traceback}: the code raised (also TimeoutError, ContextDied)
- \`end\` {executionCount, timedOut, truncated, durationMs, contextRestarted}: always last. \`truncated\`: output past 32 MiB was dropped. \`contextRestarted\`: the kernel died or was killed and started again; its state is gone

Closing the connection interrupts the execution.`;

const routes = {
  create: createRoute({ method: 'post', path: '/api/v1/sessions/{id}/contexts', tags: ['code'], summary: 'Create a code context (a kernel keeping its variables between runs)', request: { params: SessionIdParam, ...body(CreateContextSchema, false) }, responses: { 201: json(ContextSchema, 'Created'), ...errors } }),
  list: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/contexts', tags: ['code'], summary: 'List code contexts', request: { params: SessionIdParam }, responses: { 200: json(z.object({ contexts: z.array(ContextSchema) }), 'Contexts'), ...errors } }),
  get: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/contexts/{ctx}', tags: ['code'], summary: 'Get a code context', request: { params: ContextParams }, responses: { 200: json(ContextSchema, 'The context'), ...errors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/sessions/{id}/contexts/{ctx}', tags: ['code'], summary: 'Delete a code context, killing its kernel', request: { params: ContextParams }, responses: { 204: { description: 'Deleted' }, ...errors } }),
  restart: createRoute({ method: 'post', path: '/api/v1/sessions/{id}/contexts/{ctx}/restart', tags: ['code'], summary: 'Restart a context\'s kernel: same id, language and cwd; no state', request: { params: ContextParams }, responses: { 200: json(ContextSchema, 'Restarted'), ...errors } }),
  interrupt: createRoute({ method: 'post', path: '/api/v1/sessions/{id}/contexts/{ctx}/interrupt', tags: ['code'], summary: 'Interrupt the running execution (KeyboardInterrupt in Python); a no-op when idle', request: { params: ContextParams }, responses: { 200: json(ContextSchema, 'The context'), ...errors } }),
  run: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/code',
    tags: ['code'],
    summary: 'Run code in a context, streaming its output and results',
    description: EVENTS,
    request: { params: SessionIdParam, ...body(RunCodeSchema) },
    responses: { 200: { description: 'An NDJSON event stream', content: { 'application/x-ndjson': { schema: z.string() } } }, ...errors },
  }),
};

/** Thin edge over CodeInterpreterService: code contexts and runs of a session. */
export function sessionCodeRoutes(code: CodeInterpreterService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.create, async (c) => {
    // The body is optional (all defaults); one that is sent must be a JSON object.
    const text = await c.req.text();
    let raw: unknown = {};
    if (text.trim() !== '') {
      try {
        raw = JSON.parse(text);
      } catch {
        throw new ValidationError('the body must be a JSON object such as {"language":"python","cwd":"/workspace"}, or empty');
      }
    }
    const input = CreateContextSchema.safeParse(raw);
    if (!input.success) throw new ValidationError(input.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
    return c.json(await code.createContext(c.req.valid('param').id, input.data, c.get('principal')), 201);
  });
  app.openapi(routes.list, async (c) => c.json({ contexts: await code.listContexts(c.req.valid('param').id, c.get('principal')) }, 200) as never);
  app.openapi(routes.get, async (c) => c.json(await code.getContext(c.req.valid('param').id, c.req.valid('param').ctx, c.get('principal')), 200) as never);
  app.openapi(routes.delete, async (c) => {
    await code.deleteContext(c.req.valid('param').id, c.req.valid('param').ctx, c.get('principal'));
    return c.body(null, 204);
  });
  app.openapi(routes.restart, async (c) => c.json(await code.restartContext(c.req.valid('param').id, c.req.valid('param').ctx, c.get('principal')), 200) as never);
  app.openapi(routes.interrupt, async (c) => c.json(await code.interrupt(c.req.valid('param').id, c.req.valid('param').ctx, c.get('principal')), 200) as never);
  app.openapi(routes.run, async (c) => {
    const sessionId = c.req.valid('param').id;
    // Request errors (unknown context, busy, a kernel that does not start) are statuses; from here on, events.
    const run = await code.run(sessionId, c.req.valid('json'), c.get('principal'));
    c.header('content-type', 'application/x-ndjson; charset=utf-8');
    c.header('cache-control', 'no-store');
    return stream(
      c,
      async (out) => {
        // Hanging up cancels the executor call, which interrupts the code.
        out.onAbort(() => run.cancel());
        for await (const event of run.events) {
          if (out.aborted) break;
          await out.write(`${JSON.stringify(event)}\n`);
        }
      },
      async (err, out) => {
        // A failure mid-stream (the sandbox went away) is the stream's last line; the status is sent.
        log('debug', 'code run failed mid-stream', { sessionId, error: String(err) });
        const e = err as { code?: string; message?: string };
        await out.write(`${JSON.stringify({ type: 'error', name: e.code ?? 'InternalError', value: e.message ?? String(err), traceback: '' })}\n`);
      },
    ) as never;
  });
  return app;
}
