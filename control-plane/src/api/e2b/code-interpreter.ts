import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { stream } from 'hono/streaming';
import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import type { CodeRunEvent, ContextView, MimeBundle } from '../../interpreter/events.js';
import { CodeInterpreterService } from '../../interpreter/service.js';
import { log } from '../../log.js';
import { DEFAULT_TENANT, principal } from '../../tenancy/principal.js';
import type { AppEnv } from '../router.js';
import { JUPYTER_PORT, type SandboxOpener } from './access.js';
import { e2bError, onE2bError } from './errors.js';
import { fromWorkspace, toWorkspace } from './paths.js';

/**
 * The short names E2B's code interpreter gives MIME types in a result (its `Result` fields).
 * A type not listed goes under `extra`, by its MIME type, as E2B's server does.
 */
const E2B_FIELDS: Record<string, string> = {
  'text/plain': 'text',
  'text/html': 'html',
  'text/markdown': 'markdown',
  'image/svg+xml': 'svg',
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'application/pdf': 'pdf',
  'text/latex': 'latex',
  'application/json': 'json',
  'application/javascript': 'javascript',
};

/** A MIME bundle as E2B's result line: `{type: "result", is_main_result, text, png, ...}`. */
export function e2bResult(data: MimeBundle, isMainResult: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = { type: 'result', is_main_result: isMainResult };
  const extra: Record<string, unknown> = {};
  for (const [mime, value] of Object.entries(data)) {
    const field = E2B_FIELDS[mime];
    if (field) out[field] = value;
    else extra[mime] = value;
  }
  if (Object.keys(extra).length > 0) out.extra = extra;
  return out;
}

/** E2B's timestamps are microseconds since the epoch. */
const micros = (): number => Date.now() * 1000;

/** Kiln's run events as E2B's NDJSON lines (`end` is two lines, as E2B's server sends). */
export function e2bLines(e: CodeRunEvent): Array<Record<string, unknown>> {
  switch (e.type) {
    case 'start':
      return [{ type: 'start', context_id: e.contextId, language: e.language }];
    case 'stdout':
    case 'stderr':
      return [{ type: e.type, text: e.text, timestamp: micros() }];
    case 'result':
      return [e2bResult(e.data, e.isMainResult)];
    case 'error':
      return [{ type: 'error', name: e.name, value: e.value, traceback: e.traceback }];
    case 'end':
      return [{ type: 'number_of_executions', execution_count: e.executionCount }, { type: 'end_of_execution' }];
  }
}

/** A context as E2B's SDK types it (`{id, language, cwd}`), its cwd by the E2B name (/home/user). */
const e2bContext = (c: ContextView) => ({ id: c.id, language: c.language, cwd: fromWorkspace(c.cwd) });

const Execute = z
  .object({
    code: z.string().max(1024 * 1024),
    context_id: z.string().min(1).max(100).nullish(),
    language: z.string().min(1).max(40).nullish(),
    env_vars: z.record(z.string()).nullish(),
  })
  .passthrough();
const NewContext = z.object({ language: z.string().min(1).max(40).nullish(), cwd: z.string().min(1).max(4096).nullish() }).passthrough();
const ContextId = z.string().min(1).max(100);

/** The body as JSON validated by `schema`: a 400 in E2B's shape naming the field, never a crash. */
async function bodyOf<T extends z.ZodTypeAny>(c: Context, schema: T, emptyOk: boolean): Promise<z.infer<T>> {
  const text = await c.req.text();
  let raw: unknown = {};
  if (text.trim() !== '' || !emptyOk) {
    try {
      raw = JSON.parse(text);
    } catch {
      throw new ValidationError('the body must be a JSON object');
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ValidationError(parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return parsed.data as z.infer<T>;
}

/** How long /execute waits for the executor to take a run before it starts its response anyway. */
const HEADERS_AFTER_MS = 1000;
const delay = (ms: number): Promise<undefined> => new Promise((r) => setTimeout(() => r(undefined), ms).unref());

/** Largest body of a code-interpreter call: 1 MiB of code plus its JSON. */
const BODY_MAX_BYTES = 2 * 1024 * 1024;

/**
 * E2B's code interpreter server (port 49999 of an E2B sandbox) over Kiln's code contexts, so
 * `@e2b/code-interpreter`'s `Sandbox.runCode` and its context calls work unchanged:
 * `POST /execute` streams NDJSON (`stdout`, `stderr`, `result`, `error`,
 * `number_of_executions`, `end_of_execution`), `/contexts` creates, lists, restarts and deletes.
 *
 * With E2B_SANDBOX_URL set (how Kiln is used), the SDK sends these paths to the sandbox URL
 * with `E2b-Sandbox-Port: 49999`. The sandbox's access token decides, as for envd's routes
 * (access.ts); the session is opened once per request and the CodeInterpreterService works on
 * it, so nothing here bypasses the executor's own checks of context ids.
 */
export function e2bCodeInterpreterRoutes(opener: SandboxOpener, prefix: string): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onE2bError);
  // A service bound to the one sandbox the token opened: its `open` ignores the principal, which
  // is only the session's own tenant, for the logs.
  const bound = async (c: Context): Promise<{ code: CodeInterpreterService; id: string; who: ReturnType<typeof principal> }> => {
    const opened = await opener((n) => c.req.header(n), JUPYTER_PORT);
    const who = principal(opened.record.tenant ?? DEFAULT_TENANT, 'e2b-access-token', ['sessions']);
    return { code: new CodeInterpreterService({ open: () => Promise.resolve(opened) }), id: opened.record.id, who };
  };
  // Counted as it is read, whether or not the client sent a Content-Length.
  const limited = bodyLimit({ maxSize: BODY_MAX_BYTES, onError: (c) => e2bError(c, 413, `request body is larger than ${BODY_MAX_BYTES} bytes`) });

  app.post(`${prefix}/execute`, limited, async (c) => {
    const { code, id, who } = await bound(c);
    const b = await bodyOf(c, Execute, false);
    if (b.env_vars && Object.keys(b.env_vars).length > 0) {
      throw new ValidationError('Kiln does not set environment variables for one execution (env_vars / runCode envs); set them for the sandbox with Sandbox.create({ envs }) or in the code');
    }
    // CodeInterpreterService.run answers once the executor's first event came, so that a refused
    // run (unknown context, busy) is a status. A cell that prints nothing for a while would
    // hold the response's headers that long, and the SDK would wait under its request timeout
    // instead of the run's timeoutMs: past HEADERS_AFTER_MS the stream starts anyway, with a
    // `start` line (a type the SDKs skip), and a late refusal is an error line in it.
    const hangup = new AbortController();
    const settled = code.run(id, { code: b.code, signal: hangup.signal, ...(b.context_id ? { contextId: b.context_id } : {}), ...(b.language ? { language: b.language } : {}) }, who).then(
      (run) => ({ run }),
      (err: unknown) => ({ err }),
    );
    const early = await Promise.race([settled, delay(HEADERS_AFTER_MS)]);
    if (early && 'err' in early) throw early.err;
    c.header('content-type', 'application/x-ndjson; charset=utf-8');
    c.header('cache-control', 'no-store');
    return stream(
      c,
      async (out) => {
        // The SDK ends a run past its timeoutMs by hanging up: that interrupts the code, also
        // while the run has not given its first event.
        out.onAbort(() => hangup.abort());
        if (!early) await out.write(`${JSON.stringify({ type: 'start' })}\n`);
        const got = early ?? (await settled);
        if ('err' in got) {
          if (hangup.signal.aborted) return;
          throw got.err;
        }
        const run = got.run;
        for await (const event of run.events) {
          if (out.aborted) break;
          if (event.type === 'start' && !early) continue;
          for (const line of e2bLines(event)) await out.write(`${JSON.stringify(line)}\n`);
        }
      },
      async (err, out) => {
        log('debug', 'e2b code run failed mid-stream', { sessionId: id, error: String(err) });
        const e = err as { code?: string; message?: string };
        await out.write(`${JSON.stringify({ type: 'error', name: e.code ?? 'InternalError', value: e.message ?? String(err), traceback: '' })}\n`);
        await out.write(`${JSON.stringify({ type: 'unexpected_end_of_execution' })}\n`);
      },
    );
  });

  app.post(`${prefix}/contexts`, limited, async (c) => {
    const { code, id, who } = await bound(c);
    const b = await bodyOf(c, NewContext, true);
    const created = await code.createContext(id, { ...(b.language ? { language: b.language } : {}), cwd: toWorkspace(b.cwd ?? '') }, who);
    return c.json(e2bContext(created), 200);
  });
  app.get(`${prefix}/contexts`, async (c) => {
    const { code, id, who } = await bound(c);
    return c.json((await code.listContexts(id, who)).map(e2bContext), 200);
  });
  app.post(`${prefix}/contexts/:ctx/restart`, async (c) => {
    const ctx = ContextId.safeParse(c.req.param('ctx'));
    if (!ctx.success) return e2bError(c, 400, 'the context id is 1 to 100 characters');
    const { code, id, who } = await bound(c);
    return c.json(e2bContext(await code.restartContext(id, ctx.data, who)), 200);
  });
  app.delete(`${prefix}/contexts/:ctx`, async (c) => {
    const ctx = ContextId.safeParse(c.req.param('ctx'));
    if (!ctx.success) return e2bError(c, 400, 'the context id is 1 to 100 characters');
    const { code, id, who } = await bound(c);
    await code.deleteContext(id, ctx.data, who);
    return c.body(null, 204);
  });
  return app;
}
