import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { KilnError, unavailableOr } from '../errors.js';
import { log } from '../log.js';

/** Largest text a tool puts in one result field; agents pay for every character they read. */
export const MAX_TEXT_CHARS = 20_000;

/**
 * What a tool should do next when Kiln refused it with this code. Appended to the error's own
 * message, which already says what was wrong; these say which tool or argument fixes it.
 */
const HINTS: Record<string, string> = {
  SessionNotFound: 'Omit sandbox_id to use this connection\'s own sandbox, or create one with sandbox_create.',
  PathOutsideWorkspace: 'Use a path relative to /workspace (or an absolute path inside it), without "..".',
  SymlinkNotFollowed: 'File tools do not follow symbolic links; file_info shows where a link points, so use that path instead.',
  FileNotFound: 'Check the path with file_list.',
  IsADirectory: 'Use file_list for directories.',
  NotADirectory: 'Use file_read or file_info for files.',
  DirectoryNotEmpty: 'Pass recursive: true to remove a directory with its contents.',
  FunctionNotFound: 'List the deployed functions with function_list.',
  ProcessNotFound: 'The process has already exited or never existed in this sandbox.',
  TemplateNotFound: 'Omit template to use the default.',
  SnapshotNotFound: 'List the snapshots with snapshot_list.',
  SessionPaused: 'This sandbox was created with autoResume false: call sandbox_resume first.',
  QuotaExceeded: 'This tenant is at the quota named in data.quota; end sandboxes or wait for running executions to finish, then retry (or ask an administrator to raise the quota).',
  ServiceUnavailable: 'Kiln cannot reach its Redis; retry the same call in a second or two.',
};

/** A text that fits the result budget, and a note saying how to get the part that was cut. */
export function clip(text: string, how: (shownChars: number, totalChars: number) => string, max = MAX_TEXT_CHARS): { text: string; truncated: boolean; note?: string } {
  if (text.length <= max) return { text, truncated: false };
  const note = `[truncated: showing ${max} of ${text.length} characters. ${how(max, text.length)}]`;
  return { text: text.slice(0, max), truncated: true, note };
}

/** A successful result: structured content for programs, the same facts as text for the model. */
export function ok(structured: Record<string, unknown>, text: string): CallToolResult {
  return { structuredContent: structured, content: [{ type: 'text', text }] };
}

/**
 * A failure the agent can act on: `isError: true` with the Kiln error code and a message that
 * says what to change. Anything that is not a KilnError is our own fault: it is logged here
 * and the agent only learns that it was an internal error.
 */
export function toolError(thrown: unknown, tool: string): CallToolResult {
  const err = unavailableOr(thrown);
  if (err instanceof KilnError) {
    const hint = HINTS[err.code];
    const message = hint ? `${err.message}. ${hint}` : err.message;
    return {
      isError: true,
      structuredContent: { error: { code: err.code, message, ...(Object.keys(err.data).length ? { data: err.data } : {}) } },
      content: [{ type: 'text', text: `${err.code}: ${message}` }],
    };
  }
  log('error', 'mcp tool failed', { tool, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  return { isError: true, content: [{ type: 'text', text: `InternalError: ${tool} failed inside Kiln; see the control plane log. Retrying may help.` }] };
}
