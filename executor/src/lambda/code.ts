import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, normalize, isAbsolute } from 'node:path';

export interface CodeFileInput {
  path: string;
  content: Uint8Array;
  mode: number;
}

export class InvalidCodePathError extends Error {
  constructor(readonly path: string) {
    super(`code file path must be relative and stay inside the task root; got "${path}"`);
    this.name = 'InvalidCodePathError';
  }
}

/**
 * Replaces the task directory's contents with a function's files. The directory is bound
 * read-only into the sandbox at /var/task, so the runner sees the files at once.
 */
export async function writeCode(taskDir: string, files: CodeFileInput[]): Promise<void> {
  for (const f of files) {
    const rel = normalize(f.path);
    if (isAbsolute(rel) || rel.startsWith('..') || rel === '.') throw new InvalidCodePathError(f.path);
  }
  // Empty the directory but keep it: the sandbox's bind mount points at this inode.
  for (const entry of await readdir(taskDir)) await rm(join(taskDir, entry), { recursive: true, force: true });
  for (const f of files) {
    const target = join(taskDir, normalize(f.path));
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    // Readable by the sandbox user; executables keep their execute bits (bootstrap files).
    const mode = (f.mode & 0o111 ? 0o755 : 0o644) as number;
    await writeFile(target, f.content, { mode });
  }
}
