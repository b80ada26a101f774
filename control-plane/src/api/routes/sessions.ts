import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { ProcessInfo } from '@kiln/proto/executor/process';
import type { SessionService } from '../../sessions/service.js';
import type { SnapshotService } from '../../sessions/snapshots.js';
import { jsonText, newRouter, type AppEnv } from '../router.js';
import { recordJson } from '../../invocation/contract.js';
import { ValidationError } from '../../errors.js';
import { CreateSessionSchema, ExecuteSchema, ProcessInfoSchema, ProcessRequestSchema, ProcessResultSchema, SessionIdParam, SessionSchema, sessionErrors as errors } from './session-schemas.js';
import { CreateIdempotencyHeaders } from '../schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const body = <T extends z.ZodTypeAny>(schema: T) => ({ body: { required: true, content: { 'application/json': { schema } } } });

const routes = {
  create: createRoute({ method: 'post', path: '/api/v1/sessions', tags: ['sessions'], summary: 'Create a session (lease a sandbox)', request: { ...body(CreateSessionSchema), headers: CreateIdempotencyHeaders }, responses: { 201: json(SessionSchema, 'Created'), ...errors } }),
  list: createRoute({
    method: 'get',
    path: '/api/v1/sessions',
    tags: ['sessions'],
    summary: 'List sessions',
    description: 'Filter by `template` and by metadata with `metadata.<key>=<value>` (all must match).',
    request: { query: z.object({ template: z.string().optional() }).passthrough() },
    responses: { 200: json(z.object({ sessions: z.array(SessionSchema) }), 'Sessions'), ...errors },
  }),
  get: createRoute({ method: 'get', path: '/api/v1/sessions/{id}', tags: ['sessions'], summary: 'Get a session', request: { params: SessionIdParam }, responses: { 200: json(SessionSchema, 'The session'), ...errors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/sessions/{id}', tags: ['sessions'], summary: 'End a session, killing its processes', request: { params: SessionIdParam }, responses: { 204: { description: 'Ended' }, ...errors } }),
  keepalive: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/keepalive',
    tags: ['sessions'],
    summary: 'Record activity; optionally move the expiry to now + timeoutMs',
    request: { params: SessionIdParam, body: { required: false, content: { 'application/json': { schema: z.object({ timeoutMs: z.number().int().min(1000).optional() }).strict() } } } },
    responses: { 200: json(SessionSchema, 'The session'), ...errors },
  }),
  run: createRoute({ method: 'post', path: '/api/v1/sessions/{id}/process/run', tags: ['processes'], summary: 'Run a command to completion', request: { params: SessionIdParam, ...body(ProcessRequestSchema) }, responses: { 200: json(ProcessResultSchema, 'Finished'), ...errors } }),
  stream: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/process/stream',
    tags: ['processes'],
    summary: 'Run a command, streaming its output as Server-Sent Events',
    description: 'Events: `start` {pid}, `stdout`/`stderr` {data}, then `exit` {exitCode, signal, durationMs, truncated, timedOut}.',
    request: { params: SessionIdParam, ...body(ProcessRequestSchema) },
    responses: { 200: { description: 'An event stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errors },
  }),
  start: createRoute({ method: 'post', path: '/api/v1/sessions/{id}/processes', tags: ['processes'], summary: 'Start a background process', request: { params: SessionIdParam, ...body(ProcessRequestSchema) }, responses: { 201: json(ProcessInfoSchema, 'Started'), ...errors } }),
  processes: createRoute({ method: 'get', path: '/api/v1/sessions/{id}/processes', tags: ['processes'], summary: 'List background processes', request: { params: SessionIdParam }, responses: { 200: json(z.object({ processes: z.array(ProcessInfoSchema) }), 'Processes'), ...errors } }),
  signal: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/processes/{pid}/signal',
    tags: ['processes'],
    summary: 'Send a signal to a process (and its process group)',
    request: {
      params: SessionIdParam.extend({ pid: z.coerce.number().int().min(1).max(0xffff_ffff).openapi({ param: { name: 'pid', in: 'path' } }) }),
      body: { required: false, content: { 'application/json': { schema: z.object({ signal: z.string().default('SIGTERM') }).strict() } } },
    },
    responses: { 200: json(ProcessInfoSchema, 'The process'), ...errors },
  }),
  execute: createRoute({
    method: 'post',
    path: '/api/v1/sessions/{id}/execute',
    tags: ['sessions'],
    summary: 'Run a handler in the session, keeping module state between calls with the same code',
    request: { params: SessionIdParam, ...body(ExecuteSchema) },
    responses: { 200: json(z.object({ status: z.enum(['succeeded', 'failed', 'timeout']), result: z.unknown().optional(), resultBase64: z.string().optional(), error: z.unknown().optional(), logs: z.string(), durationMs: z.number(), sessionEnded: z.boolean() }), 'Finished'), ...errors },
  }),
};

export function processInfo(p: ProcessInfo): z.infer<typeof ProcessInfoSchema> {
  return {
    pid: p.pid,
    ...(p.tag ? { tag: p.tag } : {}),
    command: p.command,
    args: p.args,
    running: p.running,
    exitCode: p.running ? null : p.exitCode,
    signal: p.signal,
    startedAt: new Date(p.startedAtMs).toISOString(),
    stdout: Buffer.from(p.stdout).toString('utf8'),
    stderr: Buffer.from(p.stderr).toString('utf8'),
  };
}

function processRequest(b: z.infer<typeof ProcessRequestSchema>, sessionEnv: Record<string, string>) {
  if (b.shell && b.args?.length) throw new ValidationError('args must be empty when shell is true: the command line carries its own arguments');
  return {
    ...(b.shell ? { command: '/bin/bash', args: ['-l', '-c', b.command] } : { command: b.command, args: b.args ?? [] }),
    tag: b.tag ?? '',
    keepStdin: b.keepStdin ?? false,
    cwd: b.cwd ?? '',
    env: { ...sessionEnv, ...b.env },
    stdin: Buffer.from(b.stdin ?? ''),
    timeoutMs: b.timeoutMs ?? 0,
    maxOutputBytes: b.maxOutputBytes ?? 0,
  };
}

/** Thin edge over SessionService: sessions, processes and execute. Files are in sessions-files.ts. */
export function sessionRoutes(sessions: SessionService, snapshots?: SnapshotService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.create, async (c) => {
    const { fromSnapshot, ...input } = c.req.valid('json');
    if (fromSnapshot !== undefined && !snapshots) throw new ValidationError('fromSnapshot: this deployment keeps no snapshots');
    const made = fromSnapshot !== undefined && snapshots ? await snapshots.createSession({ ...input, fromSnapshot }, c.get('principal')) : await sessions.create(input, c.get('principal'));
    return c.json(made, 201);
  });
  app.openapi(routes.list, async (c) => {
    const metadata: Record<string, string> = {};
    // `metadata.<key>=v`, or `metadata[<key>]=v` as OpenAPI's deepObject style (generated clients) sends it.
    for (const [k, v] of Object.entries(c.req.query())) {
      const key = k.startsWith('metadata.') ? k.slice('metadata.'.length) : /^metadata\[(.+)\]$/.exec(k)?.[1];
      if (key !== undefined) metadata[key] = v;
    }
    return c.json({ sessions: await sessions.list({ template: c.req.valid('query').template, metadata }, c.get('principal')) }, 200);
  });
  app.openapi(routes.get, async (c) => c.json(await sessions.get(c.req.valid('param').id, c.get('principal')), 200));
  app.openapi(routes.delete, async (c) => {
    await sessions.delete(c.req.valid('param').id, c.get('principal'));
    return c.body(null, 204);
  });
  app.openapi(routes.keepalive, async (c) => {
    const raw = c.req.header('content-type')?.includes('json') ? ((await c.req.json().catch(() => ({}))) as { timeoutMs?: unknown }) : {};
    const timeoutMs = typeof raw.timeoutMs === 'number' ? raw.timeoutMs : undefined;
    return c.json(await sessions.keepalive(c.req.valid('param').id, c.get('principal'), timeoutMs), 200);
  });
  app.openapi(routes.run, async (c) => {
    const { record, agent } = await sessions.open(c.req.valid('param').id, c.get('principal'));
    const r = await agent.run(processRequest(c.req.valid('json'), record.env));
    return c.json(
      {
        pid: r.pid,
        exitCode: r.exitCode,
        signal: r.signal,
        stdout: Buffer.from(r.stdout).toString('utf8'),
        stderr: Buffer.from(r.stderr).toString('utf8'),
        durationMs: r.durationMs,
        truncated: r.stdoutTruncated || r.stderrTruncated,
        stdoutTruncated: r.stdoutTruncated,
        stderrTruncated: r.stderrTruncated,
        timedOut: r.timedOut,
      },
      200,
    );
  });
  app.openapi(routes.stream, async (c) => {
    const { record, agent } = await sessions.open(c.req.valid('param').id, c.get('principal'));
    const events = agent.streamProcess(processRequest(c.req.valid('json'), record.env));
    // Pull the first event before answering, so a bad request is an HTTP error, not an event.
    const first = await events.next();
    return streamSSE(c, async (sse) => {
      sse.onAbort(() => void events.return(undefined));
      for (let next = first; !next.done; next = await events.next()) {
        const e = next.value;
        if (e.exited) {
          await sse.writeSSE({ event: 'exit', data: JSON.stringify({ exitCode: e.exitCode, signal: e.signal, durationMs: e.durationMs, truncated: e.truncated, timedOut: e.timedOut }) });
        } else if (e.stdout.length) await sse.writeSSE({ event: 'stdout', data: JSON.stringify({ data: Buffer.from(e.stdout).toString('utf8') }) });
        else if (e.stderr.length) await sse.writeSSE({ event: 'stderr', data: JSON.stringify({ data: Buffer.from(e.stderr).toString('utf8') }) });
        else await sse.writeSSE({ event: 'start', data: JSON.stringify({ pid: e.pid }) });
      }
    });
  });
  app.openapi(routes.start, async (c) => {
    const { record, agent } = await sessions.open(c.req.valid('param').id, c.get('principal'));
    return c.json(processInfo(await agent.start(processRequest(c.req.valid('json'), record.env))), 201);
  });
  app.openapi(routes.processes, async (c) => {
    const { agent } = await sessions.open(c.req.valid('param').id, c.get('principal'));
    return c.json({ processes: (await agent.listProcesses()).map(processInfo) }, 200);
  });
  app.openapi(routes.signal, async (c) => {
    const { id, pid } = c.req.valid('param');
    const raw = c.req.header('content-type')?.includes('json') ? ((await c.req.json().catch(() => ({}))) as { signal?: unknown }) : {};
    const { agent } = await sessions.open(id, c.get('principal'));
    return c.json(processInfo(await agent.signal(pid, typeof raw.signal === 'string' ? raw.signal : 'SIGTERM')), 200);
  });
  // `result` embedded as the handler wrote it (recordJson), which Hono's typed-response check cannot express.
  app.openapi(routes.execute, async (c) => jsonText(c, recordJson(await sessions.execute(c.req.valid('param').id, c.req.valid('json'), c.get('principal')))) as never);
  return app;
}
