import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { CodeRunEvent } from '../../interpreter/events.js';
import { CodeInterpreterService, CODE_LANGUAGES } from '../../interpreter/service.js';
import { clip, MAX_TEXT_CHARS } from '../results.js';
import { defineTool, sandboxArgs, sandboxIdOf, type ToolDef } from '../context.js';

/** Images an agent can see (MCP image content); other binary types are named in the text only. */
const IMAGE_TYPES = ['image/png', 'image/jpeg'] as const;
/** Images per call: a loop that draws a figure each time should not flood the agent's context. */
const MAX_IMAGES = 8;

const runCode = defineTool({
  name: 'run_code',
  scope: 'sessions',
  title: 'Run code in a stateful Python or JavaScript context',
  description:
    'Runs a cell of Python (a Jupyter kernel with numpy, pandas and matplotlib) or JavaScript (Node.js 20 with top-level await) in the sandbox, the way a notebook does: variables, imports and the working directory persist between calls in the same context. ' +
    'Returns stdout, stderr, the value of the last expression, and charts: matplotlib figures come back as images without plt.show(); pandas DataFrames as tables. Errors come with their traceback. ' +
    'Omit context_id to use the sandbox\'s default context for the language.',
  inputSchema: {
    ...sandboxArgs,
    code: z.string().min(1).max(1024 * 1024).describe('The code of the cell, e.g. "import pandas as pd\\ndf = pd.read_csv(\'data.csv\')\\ndf.describe()".'),
    language: z.enum(CODE_LANGUAGES).optional().describe('python (default) or javascript; ignored when context_id is given.'),
    context_id: z.string().min(1).max(100).optional().describe('A context made with the REST API (POST /api/v1/sessions/{id}/contexts), to run in instead of the default one.'),
    timeout_ms: z.number().int().min(100).max(3_600_000).optional().describe('Interrupt the cell after this many milliseconds (default 300000).'),
  },
  async run(a, ctx) {
    const { id, created } = await ctx.sandbox(sandboxIdOf(a));
    const service = new CodeInterpreterService(ctx.services.sessions);
    const run = await service.run(id, { code: a.code, ...(a.context_id ? { contextId: a.context_id } : { language: a.language ?? 'python' }), ...(a.timeout_ms ? { timeoutMs: a.timeout_ms } : {}) }, ctx.principal);
    const events: CodeRunEvent[] = [];
    for await (const e of run.events) events.push(e);
    return toolResult(events, { sandboxId: id, sandboxCreated: created, contextId: run.contextId, language: run.language });
  },
});

/** The events of a run as one tool result: text for the model, images as image content, the facts as structured content. */
function toolResult(events: CodeRunEvent[], where: { sandboxId: string; sandboxCreated: boolean; contextId: string; language: string }): CallToolResult {
  const how = () => 'Write large output to a file in the sandbox and read parts of it instead.';
  const stdout = clip(events.flatMap((e) => (e.type === 'stdout' ? [e.text] : [])).join(''), how);
  const stderr = clip(events.flatMap((e) => (e.type === 'stderr' ? [e.text] : [])).join(''), how);
  const results = events.flatMap((e) => (e.type === 'result' ? [e] : []));
  const errors = events.flatMap((e) => (e.type === 'error' ? [e] : []));
  const end = events.find((e): e is Extract<CodeRunEvent, { type: 'end' }> => e.type === 'end');
  const images: Array<{ type: 'image'; data: string; mimeType: string }> = [];
  const shown: string[] = [];
  for (const r of results) {
    const image = IMAGE_TYPES.find((t) => typeof r.data[t] === 'string');
    if (image && images.length < MAX_IMAGES) images.push({ type: 'image', data: r.data[image] as string, mimeType: image });
    const text = typeof r.data['text/plain'] === 'string' ? r.data['text/plain'] : undefined;
    const formats = Object.keys(r.data).join(', ');
    // A figure's text/plain ("<Figure size 640x480 with 1 Axes>") says less than the image itself.
    if (!image || r.isMainResult) shown.push(`${r.isMainResult ? 'result' : 'display'} (${formats}):\n${text ?? ''}`);
  }
  const notes = [
    stdout.note,
    stderr.note,
    end?.truncated ? 'Output past 32 MiB was dropped.' : undefined,
    end?.timedOut ? 'The cell was interrupted at timeout_ms.' : undefined,
    end?.contextRestarted ? 'The kernel died or was killed and was restarted: variables and imports are gone.' : undefined,
    images.length === MAX_IMAGES ? `Only the first ${MAX_IMAGES} images are shown.` : undefined,
  ].filter((n): n is string => n !== undefined);
  const errorText = errors.map((e) => clip(`${e.name}: ${e.value}\n${e.traceback}`, how, MAX_TEXT_CHARS / 2).text);
  const head = `${errors.length ? 'error' : 'ok'} in ${where.language} context ${where.contextId} (execution ${end?.executionCount ?? '?'}), sandbox ${where.sandboxId}${where.sandboxCreated ? ' (new)' : ''}`;
  const text = [head, stdout.text && `--- stdout ---\n${stdout.text}`, stderr.text && `--- stderr ---\n${stderr.text}`, clip(shown.join('\n'), how).text, ...errorText.map((t) => `--- error ---\n${t}`), images.length ? `(${images.length} image${images.length > 1 ? 's' : ''} attached)` : '', ...notes]
    .filter(Boolean)
    .join('\n');
  const structured = {
    ...where,
    executionCount: end?.executionCount ?? 0,
    stdout: stdout.text,
    stderr: stderr.text,
    results: results.map((r) => ({ isMainResult: r.isMainResult, formats: Object.keys(r.data), ...(typeof r.data['text/plain'] === 'string' ? { text: clip(r.data['text/plain'], how).text } : {}) })),
    ...(errors[0] ? { error: { name: errors[0].name, value: errors[0].value, traceback: clip(errors[0].traceback, how, MAX_TEXT_CHARS / 2).text } } : {}),
    timedOut: end?.timedOut ?? false,
    truncated: (end?.truncated ?? false) || stdout.truncated || stderr.truncated,
    ...(notes.length ? { notes } : {}),
  };
  return { structuredContent: structured, content: [{ type: 'text', text }, ...images] };
}

/** Code tools: stateful code contexts (interpreter/service.ts). */
export const codeTools: ToolDef[] = [runCode];
