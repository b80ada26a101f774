import { Readable } from 'node:stream';
import { z } from 'zod';
import { KilnError } from '../../errors.js';
import { resultValue, type ExecutionRecord } from '../../invocation/contract.js';
import { eventText } from '../../invocation/request.js';
import { log } from '../../log.js';
import { defineTool, type ToolContext, type ToolDef } from '../context.js';
import { clip, ok } from '../results.js';

/** Code that defines a Lambda-style handler runs as one; anything else runs as a script. */
const HANDLER = {
  nodejs: /\bexports\.handler\s*=|\bmodule\.exports\s*=|^\s*export\s+(async\s+)?(function\s*\*?\s*handler\b|(const|let|var)\s+handler\b)|^\s*export\s*\{[^}]*\bhandler\b/m,
  python: /^(async\s+)?def\s+handler\s*\(/m,
};
const SCRIPT = {
  nodejs: (code: string) => ({ file: /^\s*(import|export)\s/m.test(code) ? 'main.mjs' : 'main.js', command: 'node' }),
  python: () => ({ file: 'main.py', command: 'python3' }),
  shell: () => ({ file: 'main.sh', command: 'sh' }),
};
const DEFAULT_TIMEOUT_MS = 30_000;

function functionsOf(ctx: ToolContext) {
  if (!ctx.services.functions) throw new KilnError('FunctionsDisabled', 503, 'functions are not enabled on this Kiln');
  return ctx.services.functions;
}

function recordText(r: ExecutionRecord): { text: string; logs: string; note?: string } {
  const logs = clip(r.logs, () => 'Fetch the whole log with GET /api/v1/executions/{id}.');
  const outcome = r.status === 'succeeded' ? `result: ${r.resultJson ?? JSON.stringify(r.result ?? r.resultBase64 ?? null)}` : `${r.status}: ${r.error ? `${r.error.errorType}: ${r.error.errorMessage}` : 'no error detail'}`;
  return { text: [outcome, logs.text && `--- logs ---\n${logs.text}`, logs.note].filter(Boolean).join('\n'), logs: logs.text, ...(logs.note ? { note: logs.note } : {}) };
}

const functionList = defineTool({
  name: 'function_list',
  scope: 'read',
  title: 'List functions',
  description: 'Lists the Lambda-style functions your tenant has deployed on Kiln (name, runtime, handler, description), in name order. Call one with function_invoke.',
  inputSchema: {
    marker: z.string().optional().describe('Continue after this marker (the nextMarker of the previous page).'),
    max_items: z.number().int().min(1).max(1000).optional().describe('Page size (default 50).'),
  },
  annotations: { readOnlyHint: true },
  async run(a, ctx) {
    const page = await functionsOf(ctx).service.list(ctx.principal, a.marker, a.max_items ?? 50);
    const functions = page.records.map((f) => ({ name: f.name, runtime: f.runtime, handler: f.handler, description: f.description, memorySize: f.memorySize, timeout: f.timeout, lastModified: f.lastModified }));
    const lines = functions.map((f) => `${f.name} (${f.runtime}, ${f.handler})${f.description ? ` - ${f.description}` : ''}`);
    if (page.nextMarker) lines.push(`[more functions: call function_list with marker: "${page.nextMarker}"]`);
    return ok({ functions, ...(page.nextMarker ? { nextMarker: page.nextMarker } : {}) }, lines.join('\n') || 'No functions are deployed.');
  },
});

const functionInvoke = defineTool({
  name: 'function_invoke',
  scope: 'invoke',
  title: 'Invoke a function',
  description: 'Invokes a deployed function synchronously with a JSON event and returns its status, result (or Lambda-shaped error) and logs.',
  inputSchema: {
    name: z.string().min(1).describe('Function name, as listed by function_list.'),
    event: z.unknown().optional().describe('The event: any JSON value (default {}).'),
    qualifier: z.string().optional().describe('$LATEST (default), a published version number or an alias name.'),
  },
  async run(a, ctx) {
    // Names are the connection's tenant's: another tenant's function is FunctionNotFound.
    const out = await functionsOf(ctx).invoker.invoke(ctx.principal, { name: a.name }, a.qualifier, eventText(a.event ?? {}), 'RequestResponse');
    const r = out.record as ExecutionRecord;
    const t = recordText(r);
    return ok({ id: r.id, version: out.function.version, status: r.status, result: resultValue(r) ?? null, ...(r.resultBase64 !== undefined ? { resultBase64: r.resultBase64 } : {}), ...(r.error ? { error: r.error } : {}), logs: t.logs, durationMs: r.durationMs, startType: r.startType, ...(t.note ? { note: t.note } : {}) }, t.text);
  },
});

const codeRun = defineTool({
  name: 'code_run',
  scope: 'invoke',
  title: 'Run code',
  description:
    'Runs code in a fresh sandbox from a warm pool and returns result, stdout, stderr and error. ' +
    'nodejs or python code that defines `handler(event, context)` (exports.handler = ..., export const handler, def handler(event, context)) runs as a Lambda-style handler with `event` and returns its value as result (console output is in stdout as the Lambda log). ' +
    'Any other code runs as a script (node main.js, python3 main.py, sh main.sh) with stdout, stderr and the exit code. No network; nothing persists after the call.',
  inputSchema: {
    language: z.enum(['nodejs', 'python', 'shell']).describe('nodejs (Node.js 20), python (Python 3) or shell (POSIX sh).'),
    code: z.string().min(1).describe('A handler module or a script.'),
    event: z.unknown().optional().describe('Event passed to a handler (ignored by scripts).'),
    timeout_ms: z.number().int().min(100).max(900_000).optional().describe(`Give up after this many milliseconds (default ${DEFAULT_TIMEOUT_MS}).`),
  },
  async run(a, ctx) {
    const timeoutMs = a.timeout_ms ?? DEFAULT_TIMEOUT_MS;
    if (a.language !== 'shell' && HANDLER[a.language].test(a.code)) {
      const { record: r } = await ctx.services.executions.submit({ code: a.code, language: a.language, event: a.event ?? {}, timeoutMs }, ctx.principal);
      if (!r) throw new KilnError('WaitTimeout', 504, 'the execution did not finish in time');
      const t = recordText(r);
      return ok({ mode: 'handler', status: r.status, result: resultValue(r) ?? null, stdout: t.logs, stderr: '', ...(r.error ? { error: r.error } : {}), durationMs: r.durationMs, startType: r.startType, ...(t.note ? { note: t.note } : {}) }, t.text);
    }
    return runScript(ctx, a.language, a.code, timeoutMs);
  },
});

/** A script runs in a session of its own: leased warm, written to /workspace, run, and deleted. */
async function runScript(ctx: ToolContext, language: 'nodejs' | 'python' | 'shell', code: string, timeoutMs: number) {
  const { sessions, templates } = ctx.services;
  const template = language === 'shell' ? (templates.has('shell') ? 'shell' : 'nodejs') : language;
  const { file, command } = SCRIPT[language](code);
  const session = await sessions.create({ template, timeoutMs: Math.max(60_000, timeoutMs + 60_000), metadata: { ...ctx.callerMetadata(), 'mcp.tool': 'code_run' } }, ctx.principal);
  try {
    const { agent, record } = await sessions.open(session.id, ctx.principal);
    await agent.upload('file', file, Readable.from([Buffer.from(code)]), 0o644);
    const r = await agent.run({ command, args: [file], env: record.env, timeoutMs });
    const how = () => 'Write the output to a file in a sandbox instead (process_run / file_read in the developer profile).';
    const stdout = clip(Buffer.from(r.stdout).toString('utf8'), how);
    const stderr = clip(Buffer.from(r.stderr).toString('utf8'), how);
    const status = r.timedOut ? 'timeout' : r.exitCode === 0 ? 'succeeded' : 'failed';
    const error = status === 'succeeded' ? undefined : r.timedOut ? { errorType: 'Timeout', errorMessage: `killed after ${timeoutMs} ms; raise timeout_ms` } : { errorType: 'NonZeroExit', errorMessage: `exited with code ${r.exitCode}${r.signal ? ` (signal ${r.signal})` : ''}` };
    const notes = [stdout.note, stderr.note].filter((n): n is string => n !== undefined);
    const text = [status === 'succeeded' ? 'exit code 0' : `${status}: ${error?.errorMessage ?? ''}`, stdout.text && `--- stdout ---\n${stdout.text}`, stderr.text && `--- stderr ---\n${stderr.text}`, ...notes].filter(Boolean).join('\n');
    return ok({ mode: 'script', status, result: null, exitCode: r.exitCode, stdout: stdout.text, stderr: stderr.text, ...(error ? { error } : {}), durationMs: r.durationMs, ...(notes.length ? { notes } : {}) }, text);
  } finally {
    await sessions.delete(session.id, ctx.principal, 'code_run finished').catch((err: unknown) => log('warn', 'could not delete the code_run sandbox; the idle rules will end it', { sessionId: session.id, error: String(err) }));
  }
}

/** Function tools: deployed functions, and one-off code in a fresh sandbox. */
export const functionTools: ToolDef[] = [functionList, functionInvoke, codeRun];
