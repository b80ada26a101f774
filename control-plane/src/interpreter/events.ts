import type { CodeEvent, ContextInfo } from '@kiln/proto/executor/interpreter';

/** The MIME types Kiln documents for results; a kernel may send others, which pass through. */
export const MIME_TYPES = ['text/plain', 'text/html', 'text/markdown', 'image/png', 'image/svg+xml', 'image/jpeg', 'application/json', 'application/pdf', 'text/latex', 'application/javascript'] as const;

/** A result or display output: MIME type → value (binary types base64, application/json any JSON). */
export type MimeBundle = Record<string, unknown>;

/** One event of `POST /sessions/{id}/code`, in the order they happen (one NDJSON line each). */
export type CodeRunEvent =
  | { type: 'start'; contextId: string; language: string }
  | { type: 'stdout' | 'stderr'; text: string }
  | { type: 'result'; isMainResult: boolean; data: MimeBundle }
  | { type: 'error'; name: string; value: string; traceback: string }
  | { type: 'end'; executionCount: number; timedOut: boolean; truncated: boolean; durationMs: number; contextRestarted: boolean };

export interface ContextView {
  id: string;
  language: string;
  cwd: string;
  busy: boolean;
  executionCount: number;
  createdAt: string;
}

export function contextView(c: ContextInfo): ContextView {
  return { id: c.id, language: c.language, cwd: c.cwd, busy: c.busy, executionCount: c.executionCount, createdAt: new Date(c.createdAtMs).toISOString() };
}

/**
 * An executor's event as the API's. The bundle's JSON came from a kernel inside the sandbox:
 * anything but a JSON object becomes an empty bundle rather than an error (the executor capped its size).
 */
export function codeRunEvent(e: CodeEvent): CodeRunEvent | undefined {
  if (e.stdout !== undefined) return { type: 'stdout', text: e.stdout };
  if (e.stderr !== undefined) return { type: 'stderr', text: e.stderr };
  if (e.result) return { type: 'result', isMainResult: e.result.isMainResult, data: bundleOf(e.result.dataJson) };
  if (e.error) return { type: 'error', name: e.error.name, value: e.error.value, traceback: e.error.traceback };
  if (e.end) return { type: 'end', executionCount: e.end.executionCount, timedOut: e.end.timedOut, truncated: e.end.truncated, durationMs: Math.round(e.end.durationMs * 1000) / 1000, contextRestarted: e.end.contextRestarted };
  return undefined;
}

function bundleOf(json: string): MimeBundle {
  try {
    const data = JSON.parse(json) as unknown;
    return data && typeof data === 'object' && !Array.isArray(data) ? (data as MimeBundle) : {};
  } catch {
    return {};
  }
}
