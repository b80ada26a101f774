import { BaseSandbox, type ExecuteResponse, type FileDownloadResponse, type FileOperationError, type FileUploadResponse } from 'deepagents';
import type { Kiln } from '../client.js';
import { ForbiddenError, InvalidRequestError, KilnError, NotFoundError } from '../errors.js';
import type { CreateSessionParams } from '../schema.js';
import type { Session } from '../sessions/session.js';

export interface KilnSandboxOptions {
  /** Kills each command after this long (default 300000 ms, Kiln's own default). */
  commandTimeoutMs?: number;
}

/** Kiln's refusal of a file operation as deepagents' error codes. */
function fileError(err: unknown): FileOperationError {
  if (err instanceof NotFoundError) return 'file_not_found';
  if (err instanceof ForbiddenError) return 'permission_denied';
  if (err instanceof KilnError && /directory/i.test(err.message)) return 'is_directory';
  if (err instanceof InvalidRequestError) return 'invalid_path';
  throw err;
}

/**
 * A Kiln session as a sandbox backend for LangChain's deepagents (`BaseSandbox`, the public base
 * of its `SandboxBackendProtocol`): the agent's `execute` tool runs shell commands in the
 * session, and its file tools (ls, read, write, edit, glob, grep) work on the session's files.
 * Paths are the sandbox's: /workspace is the writable home. Transport failures (quota, lost
 * session) are thrown as the SDK's typed errors; a missing file is reported to the agent.
 */
export class KilnSandbox extends BaseSandbox {
  readonly id: string;

  constructor(
    readonly session: Session,
    private readonly opts: KilnSandboxOptions = {},
  ) {
    super();
    this.id = session.id;
  }

  /** A new session to work in; `close()` ends it. */
  static async create(kiln: Kiln, params: CreateSessionParams = {}, opts: KilnSandboxOptions = {}): Promise<KilnSandbox> {
    return new KilnSandbox(await kiln.sessions.create(params), opts);
  }

  async execute(command: string): Promise<ExecuteResponse> {
    const r = await this.session.commands.run(command, { shell: true, ...(this.opts.commandTimeoutMs ? { timeoutMs: this.opts.commandTimeoutMs } : {}) });
    const output = r.stderr ? `${r.stdout}${r.stdout && !r.stdout.endsWith('\n') ? '\n' : ''}${r.stderr}` : r.stdout;
    return { output, exitCode: r.timedOut ? null : r.exitCode, truncated: r.truncated };
  }

  async uploadFiles(files: Array<[string, Uint8Array]>): Promise<FileUploadResponse[]> {
    // One at a time, so partial success is reported per file as the protocol asks.
    const out: FileUploadResponse[] = [];
    for (const [path, content] of files) {
      try {
        await this.session.files.write(path, content);
        out.push({ path, error: null });
      } catch (err) {
        out.push({ path, error: fileError(err) });
      }
    }
    return out;
  }

  async downloadFiles(paths: string[]): Promise<FileDownloadResponse[]> {
    const out: FileDownloadResponse[] = [];
    for (const path of paths) {
      try {
        out.push({ path, content: await this.session.files.readBytes(path), error: null });
      } catch (err) {
        out.push({ path, content: null, error: fileError(err) });
      }
    }
    return out;
  }

  /** Ends the session. */
  async close(): Promise<void> {
    await this.session.kill();
  }
}
