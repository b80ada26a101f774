import type { FileInfo } from '@kiln/proto/executor/files';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { SessionAgent } from '../../agent/session-client.js';
import { ValidationError } from '../../errors.js';
import { defineTool, sandboxArgs, sandboxIdOf, type ToolContext, type ToolDef } from '../context.js';
import { clip, ok } from '../results.js';

/** Default and largest number of bytes one file_read returns. */
const READ_DEFAULT_BYTES = 64 * 1024;
const READ_MAX_BYTES = 1024 * 1024;
const LIST_MAX_ENTRIES = 500;

const path = (what: string) => z.string().min(1).describe(`${what}: relative to /workspace, or absolute inside it. ".." that leaves /workspace is refused.`);

function info(f: FileInfo) {
  return { path: f.path, name: f.name, type: f.type, size: f.size, mode: f.mode, modifiedAt: new Date(f.modifiedAtMs).toISOString(), ...(f.symlinkTarget ? { symlinkTarget: f.symlinkTarget } : {}) };
}

async function open(ctx: ToolContext, a: { sandbox_id?: string | undefined; sandboxId?: string | undefined }): Promise<{ id: string; agent: SessionAgent }> {
  const { id } = await ctx.sandbox(sandboxIdOf(a));
  return { id, agent: (await ctx.services.sessions.open(id, ctx.principal)).agent };
}

/** Reads `length` bytes from `offset` of a file stream, stopping the stream once it has them. */
async function readRange(source: AsyncGenerator<{ data: Uint8Array }>, offset: number, length: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let pos = 0;
  let have = 0;
  for await (const { data } of source) {
    const chunk = Buffer.from(data);
    const start = Math.max(0, offset - pos);
    pos += chunk.length;
    if (start >= chunk.length) continue;
    const part = chunk.subarray(start, start + (length - have));
    parts.push(part);
    have += part.length;
    if (have >= length) break; // leaving the loop cancels the executor's stream
  }
  return Buffer.concat(parts);
}

async function* bytesOf(source: AsyncGenerator<{ data: Uint8Array }>): AsyncGenerator<Uint8Array> {
  for await (const { data } of source) yield data;
}

const fileRead = defineTool({
  name: 'file_read',
  scope: 'sessions',
  title: 'Read a file',
  description: `Reads a file in the sandbox's /workspace. Returns up to ${READ_DEFAULT_BYTES} bytes as UTF-8 text (or base64 with encoding: "base64"); for larger files the result says which offset to pass to read on.`,
  inputSchema: {
    ...sandboxArgs,
    path: path('File to read'),
    offset: z.number().int().min(0).optional().describe('Byte offset to start at (default 0).'),
    length: z.number().int().min(1).max(READ_MAX_BYTES).optional().describe(`Bytes to read (default ${READ_DEFAULT_BYTES}, at most ${READ_MAX_BYTES}).`),
    encoding: z.enum(['utf8', 'base64']).optional().describe('utf8 (default) for text, base64 for binary files.'),
  },
  annotations: { readOnlyHint: true },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const stat = await agent.stat(a.path);
    if (stat.type === 'dir') throw new ValidationError(`"${a.path}" is a directory; use file_list to see what it holds`, { path: a.path });
    const offset = a.offset ?? 0;
    const bytes = await readRange(agent.readFile(a.path), offset, a.length ?? READ_DEFAULT_BYTES);
    const end = offset + bytes.length;
    const content = a.encoding === 'base64' ? bytes.toString('base64') : bytes.toString('utf8');
    const note = end < stat.size ? `[partial: bytes ${offset}-${end} of ${stat.size}; call file_read with offset: ${end} to read on]` : undefined;
    return ok(
      { sandboxId: id, path: stat.path, size: stat.size, offset, bytesRead: bytes.length, encoding: a.encoding ?? 'utf8', content, truncated: end < stat.size, ...(note ? { note } : {}) },
      note ? `${content}\n${note}` : content,
    );
  },
});

const fileWrite = defineTool({
  name: 'file_write',
  scope: 'sessions',
  title: 'Write a file',
  description: 'Creates or replaces a file in the sandbox\'s /workspace with the given content; missing parent directories are created.',
  inputSchema: {
    ...sandboxArgs,
    path: path('File to write'),
    content: z.string().describe('The whole new content of the file.'),
    encoding: z.enum(['utf8', 'base64']).optional().describe('How `content` is encoded: utf8 (default) or base64 for binary data.'),
    mode: z.string().regex(/^[0-7]{3,4}$/, 'mode must be octal digits such as "644" or "755"').optional().describe('Octal permissions, e.g. "755" for a script (default "644").'),
  },
  annotations: { destructiveHint: true, idempotentHint: true },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const data = Buffer.from(a.content, a.encoding === 'base64' ? 'base64' : 'utf8');
    const f = await agent.upload('file', a.path, Readable.from([data]), a.mode ? parseInt(a.mode, 8) : 0o644);
    return ok({ sandboxId: id, ...info(f) }, `Wrote ${data.length} bytes to ${f.path} in sandbox ${id}.`);
  },
});

const fileList = defineTool({
  name: 'file_list',
  scope: 'sessions',
  title: 'List a directory',
  description: `Lists the entries of a directory in the sandbox's /workspace (default: /workspace itself) with type, size and modification time; at most ${LIST_MAX_ENTRIES} are returned.`,
  inputSchema: { ...sandboxArgs, path: path('Directory to list').optional() },
  annotations: { readOnlyHint: true },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const all = (await agent.list(a.path ?? '.')).map(info);
    const entries = all.slice(0, LIST_MAX_ENTRIES);
    const lines = clip(entries.map((e) => `${e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'l' : '-'} ${String(e.size).padStart(10)} ${e.name}${e.type === 'dir' ? '/' : ''}`).join('\n'), () => 'List a subdirectory, or run `find` with process_run.');
    const note = all.length > entries.length ? `[${all.length - entries.length} more entries not shown; list subdirectories or use process_run with ls/find]` : lines.note;
    return ok({ sandboxId: id, path: a.path ?? '.', entries, truncated: all.length > entries.length, ...(note ? { note } : {}) }, [lines.text || '(empty directory)', note].filter(Boolean).join('\n'));
  },
});

const fileMkdir = defineTool({
  name: 'file_mkdir',
  scope: 'sessions',
  title: 'Create a directory',
  description: 'Creates a directory (and its missing parents) in the sandbox\'s /workspace; an existing directory is fine.',
  inputSchema: { ...sandboxArgs, path: path('Directory to create') },
  annotations: { idempotentHint: true },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const f = await agent.mkdir(a.path);
    return ok({ sandboxId: id, ...info(f) }, `Created ${f.path}.`);
  },
});

const fileRemove = defineTool({
  name: 'file_remove',
  scope: 'sessions',
  title: 'Remove a file or directory',
  description: 'Removes a file, or a directory with recursive: true. Removing a path that does not exist is not an error (existed: false).',
  inputSchema: { ...sandboxArgs, path: path('File or directory to remove'), recursive: z.boolean().optional().describe('Remove a directory and everything in it (default false).') },
  annotations: { destructiveHint: true, idempotentHint: true },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const existed = await agent.remove(a.path, a.recursive ?? false);
    return ok({ sandboxId: id, path: a.path, existed }, existed ? `Removed ${a.path}.` : `${a.path} did not exist.`);
  },
});

const fileMove = defineTool({
  name: 'file_move',
  scope: 'sessions',
  title: 'Move or rename',
  description: 'Moves or renames a file or directory inside the sandbox\'s /workspace, replacing a file at the destination.',
  inputSchema: { ...sandboxArgs, source: path('Path to move'), destination: path('New path') },
  annotations: { destructiveHint: true },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const f = await agent.rename(a.source, a.destination);
    return ok({ sandboxId: id, ...info(f) }, `Moved ${a.source} to ${f.path}.`);
  },
});

const fileCopy = defineTool({
  name: 'file_copy',
  scope: 'sessions',
  title: 'Copy a file or directory',
  description: 'Copies a file, or a directory with everything in it, to a new path inside the sandbox\'s /workspace (parents are created; an existing file is replaced).',
  inputSchema: { ...sandboxArgs, source: path('Path to copy'), destination: path('Path of the copy') },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const src = await agent.stat(a.source);
    // Both ends go through the executor's path checks: a read (or tar) stream into an upload.
    const f = src.type === 'dir' ? await agent.upload('tar', a.destination, bytesOf(agent.tarDownload(a.source))) : await agent.upload('file', a.destination, bytesOf(agent.readFile(a.source)), src.mode & 0o7777);
    return ok({ sandboxId: id, ...info(f) }, `Copied ${a.source} to ${f.path}.`);
  },
});

const fileInfo = defineTool({
  name: 'file_info',
  scope: 'sessions',
  title: 'File information',
  description: 'Returns the type (file, dir, symlink), size in bytes, permissions and modification time of a path in the sandbox\'s /workspace.',
  inputSchema: { ...sandboxArgs, path: path('Path to inspect') },
  annotations: { readOnlyHint: true },
  async run(a, ctx) {
    const { id, agent } = await open(ctx, a);
    const f = info(await agent.stat(a.path));
    return ok({ sandboxId: id, ...f }, `${f.path}: ${f.type}, ${f.size} bytes, mode ${(f.mode & 0o7777).toString(8)}, modified ${f.modifiedAt}`);
  },
});

/** Tools for files in a session's /workspace; every path is checked by the executor. */
export const fileTools: ToolDef[] = [fileRead, fileWrite, fileList, fileMkdir, fileRemove, fileMove, fileCopy, fileInfo];
