import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { SessionService } from '../../sessions/service.js';
import { newRouter, type AppEnv } from '../router.js';
import { processInfo } from './sessions.js';
import { ProcessInfoSchema, SessionIdParam, sessionErrors as errors } from './session-schemas.js';

/** A background process by pid (`12`) or by tag (`tag:<name>`). */
const ProcessParam = SessionIdParam.extend({
  process: z
    .string()
    .regex(/^([1-9][0-9]{0,9}|tag:.{1,256})$/, 'process must be a pid or tag:<name>')
    .openapi({ param: { name: 'process', in: 'path' }, example: 'tag:server', description: 'A pid, or `tag:<name>` for the process started with that tag' }),
});

/** pid and tag as the executor takes them: a tag when pid is 0. */
export function processSelector(param: string): { pid: number; tag: string } {
  return param.startsWith('tag:') ? { pid: 0, tag: param.slice(4) } : { pid: Number(param), tag: '' };
}

const StdinSchema = z
  .object({
    data: z.string().max(16 * 1024 * 1024).optional().openapi({ description: 'Text to write (UTF-8), or base64 with `base64: true`' }),
    base64: z.boolean().optional(),
    close: z.boolean().optional().openapi({ description: 'Then close stdin (EOF)' }),
  })
  .strict()
  .openapi('ProcessStdin');

const routes = {
  stdin: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/processes/{process}/stdin',
    tags: ['processes'],
    summary: 'Write to (and optionally close) the stdin of a background process started with keepStdin',
    request: { params: ProcessParam, body: { required: true, content: { 'application/json': { schema: StdinSchema } } } },
    responses: { 200: { description: 'The process', content: { 'application/json': { schema: ProcessInfoSchema } } }, ...errors },
  }),
  attach: createRoute({
    method: 'get',
    path: '/api/v1/sessions/{id}/processes/{process}/stream',
    tags: ['processes'],
    summary: 'Reattach to a background process: its output from now on as Server-Sent Events',
    description: 'Events: `stdout`/`stderr`/`pty` {data}, then `exit` {exitCode, signal, durationMs}; for a process that has already exited, only `exit`.',
    request: { params: ProcessParam },
    responses: { 200: { description: 'An event stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errors },
  }),
};

/** Kiln's own REST for what E2B's process API also needs: stdin of a running process and reattaching to its output. */
export function sessionProcessIoRoutes(sessions: SessionService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.stdin, async (c) => {
    const { id, process } = c.req.valid('param');
    const b = c.req.valid('json');
    const { pid, tag } = processSelector(process);
    const { agent } = await sessions.open(id, c.get('principal'));
    const data = Buffer.from(b.data ?? '', b.base64 ? 'base64' : 'utf8');
    return c.json(processInfo(await agent.input(pid, tag, data, b.close ?? false)), 200);
  });
  app.openapi(routes.attach, async (c) => {
    const { id, process } = c.req.valid('param');
    const { pid, tag } = processSelector(process);
    const { agent } = await sessions.open(id, c.get('principal'));
    const events = agent.attach(pid, tag);
    // The first event (or the error of an unknown process) before answering: a 404 stays a 404.
    const first = await events.next();
    return streamSSE(c, async (sse) => {
      sse.onAbort(() => void events.return(undefined));
      for (let next = first; !next.done; next = await events.next()) {
        const e = next.value;
        const text = (b: Uint8Array): string => JSON.stringify({ data: Buffer.from(b).toString('utf8') });
        if (e.exited) await sse.writeSSE({ event: 'exit', data: JSON.stringify({ exitCode: e.exitCode, signal: e.signal, durationMs: e.durationMs }) });
        else if (e.stdout.length) await sse.writeSSE({ event: 'stdout', data: text(e.stdout) });
        else if (e.stderr.length) await sse.writeSSE({ event: 'stderr', data: text(e.stderr) });
        else if (e.pty.length) await sse.writeSSE({ event: 'pty', data: text(e.pty) });
      }
    });
  });
  return app;
}
