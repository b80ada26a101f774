/**
 * Fixtures shared by the NFS tests and the benchmark: temporary exports, a
 * server with a mutable resolver, and a runner for the libnfs CLI tools.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NfsServer } from './server.js';
import type { NfsExport } from './types.js';

/** A running server plus the exports it resolves (mutate `exports` to add or end sessions). */
export interface TestNfs {
  server: NfsServer;
  port: number;
  exports: Map<string, NfsExport>;
  /** libnfs URL for `path` ("/<id>/…"). */
  url(path: string): string;
  close(): Promise<void>;
}

/** Creates a temporary directory; remove it with {@link removeDir}. */
export function tempDir(prefix = 'kiln-nfs-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** An export record for a fresh temp root. */
export function makeExport(id: string, opts: Partial<NfsExport> = {}): NfsExport {
  return { id, root: opts.root ?? tempDir(`kiln-nfs-${id}-`), readOnly: false, uid: 1000, gid: 1000, ...opts };
}

/** Starts a server on an ephemeral loopback port resolving the given exports. */
export async function startNfs(exps: NfsExport[]): Promise<TestNfs> {
  const exports = new Map(exps.map((e) => [e.id, e]));
  const server = new NfsServer({
    resolver: { resolve: (id) => exports.get(id) },
    port: 0,
    log: { fault: (msg, err) => console.error(`[nfs fault] ${msg}`, err) },
  });
  const { port } = await server.listen();
  return {
    server,
    port,
    exports,
    url: (path) => `nfs://127.0.0.1${path}?nfsport=${port}&mountport=${port}&version=3`,
    close: () => server.close(),
  };
}

/** Result of a finished child process. */
export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with a hard timeout, never rejecting on a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
