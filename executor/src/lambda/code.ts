import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, isAbsolute } from 'node:path';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { AgentError } from '../errors.js';

export interface CodeFileInput {
  path: string;
  content: Uint8Array;
  mode: number;
}

/** A code file whose path leaves the task directory. */
export class InvalidCodePathError extends AgentError {
  constructor(readonly path: string) {
    super(ErrorCode.ERROR_CODE_INVALID_CODE_PATH, `code file path must be relative and stay inside the task root; got "${path}"`, { path });
  }
}

/**
 * Writes a function's files into a sandbox's task directory, bound read-only into the
 * sandbox at /var/task, so the runner sees them at once. The directory is empty: code is
 * written once per sandbox (invoke.ts loads only into a sandbox that holds no function, and
 * a failed load kills the sandbox). Files are written concurrently and only directories
 * below the root are created: on a warm start these round trips through libuv's thread
 * pool are most of the time before the runner can load the handler.
 */
export async function writeCode(taskDir: string, files: CodeFileInput[]): Promise<void> {
  for (const f of files) {
    const rel = normalize(f.path);
    if (isAbsolute(rel) || rel.startsWith('..') || rel === '.') throw new InvalidCodePathError(f.path);
  }
  const dirs = new Set<string>();
  for (const f of files) {
    const dir = dirname(normalize(f.path));
    if (dir !== '.') dirs.add(dir);
  }
  // Parents before children: sorted paths put "a" before "a/b".
  for (const dir of [...dirs].sort()) await mkdir(join(taskDir, dir), { recursive: true, mode: 0o755 });
  await Promise.all(
    files.map((f) =>
      // Readable by the sandbox user; executables keep their execute bits (bootstrap files).
      writeFile(join(taskDir, normalize(f.path)), f.content, { mode: f.mode & 0o111 ? 0o755 : 0o644 }),
    ),
  );
}
