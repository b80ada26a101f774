import { ErrorCode } from '@kiln/proto/executor/errors';

/**
 * A failure of an executor call with a reason the caller can name: an {@link ErrorCode} from
 * kiln/executor/v1/errors.proto, a message that says what to change, and data. Every service
 * turns it into the gRPC status and trailers of the one error channel (agent/error-channel.ts);
 * the control plane rebuilds its own classes from the code in one table
 * (control-plane/src/agent/errors.ts). Anything that is not an AgentError crosses as
 * ERROR_CODE_INTERNAL: the executor's own fault.
 */
export class AgentError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends AgentError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, message, data);
  }
}

export class PathOutsideWorkspaceError extends AgentError {
  constructor(path: string) {
    super(ErrorCode.ERROR_CODE_PATH_OUTSIDE_WORKSPACE, `path "${path}" is outside /workspace; use a path inside /workspace without ".." escapes or symlinks that leave it`, { path });
  }
}

/**
 * The path goes through a symbolic link, or names one where a file or directory is needed.
 * Host-side file operations never follow links (a sandbox could point one anywhere, or swap
 * one in between a check and a use); stat, list, remove and rename act on a link itself.
 */
export class SymlinkNotFollowedError extends AgentError {
  constructor(path: string) {
    super(ErrorCode.ERROR_CODE_SYMLINK_NOT_FOLLOWED, `${path} is or goes through a symbolic link, and the files API does not follow links; use the path the link points to (stat, list, remove and rename act on the link itself)`, { path });
  }
}

export class FileNotFoundError extends AgentError {
  constructor(path: string) {
    super(ErrorCode.ERROR_CODE_FILE_NOT_FOUND, `no such file or directory: ${path}`, { path });
  }
}

export class ProcessNotFoundError extends AgentError {
  constructor(pid: number, finished = false, tag = '') {
    const name = pid || !tag ? `process ${pid}` : `process tagged "${tag}"`;
    super(ErrorCode.ERROR_CODE_PROCESS_NOT_FOUND, finished ? `${name} has already exited` : `${name} does not exist in this session`, { pid, finished, ...(tag ? { tag } : {}) });
  }
}

export class InvalidSignalError extends AgentError {
  constructor(signal: string) {
    super(ErrorCode.ERROR_CODE_INVALID_SIGNAL, `unknown signal "${signal}"; use a name such as SIGTERM or SIGKILL, or its number`, { signal });
  }
}

export class DiskQuotaExceededError extends AgentError {
  constructor(limitMB: number | undefined, path?: string) {
    const limit = limitMB === undefined ? '' : ` of ${limitMB} MB`;
    super(
      ErrorCode.ERROR_CODE_DISK_QUOTA_EXCEEDED,
      limitMB === undefined
        ? `no space to write ${path ?? 'the file'}`
        : `${path ? `no space to write ${path}: ` : ''}the workspace is over its disk quota${limit}, or the file over its size limit${limit}; delete files first`,
      { ...(limitMB === undefined ? {} : { limitMB }), ...(path === undefined ? {} : { path }) },
    );
  }
}

/** Turns filesystem errno failures into typed errors that name the sandbox path. */
export function fsError(err: unknown, path: string): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new FileNotFoundError(path);
  if (code === 'ENOTDIR') return new AgentError(ErrorCode.ERROR_CODE_NOT_A_DIRECTORY, `a component of ${path} is not a directory`, { path });
  if (code === 'EISDIR') return new AgentError(ErrorCode.ERROR_CODE_IS_A_DIRECTORY, `${path} is a directory`, { path });
  if (code === 'EEXIST') return new AgentError(ErrorCode.ERROR_CODE_FILE_EXISTS, `${path} already exists`, { path });
  if (code === 'ENOTEMPTY') return new AgentError(ErrorCode.ERROR_CODE_DIRECTORY_NOT_EMPTY, `${path} is not empty; pass recursive=true`, { path });
  // Every host-side open uses O_NOFOLLOW and the fd walk turns a link met midway into ELOOP.
  if (code === 'ELOOP') return new SymlinkNotFollowedError(path);
  if (code === 'ENAMETOOLONG') return new AgentError(ErrorCode.ERROR_CODE_NAME_TOO_LONG, `a name in ${path.slice(0, 300)} is longer than 255 bytes, or the path longer than 4096`, { path });
  if (code === 'EFBIG' || code === 'ENOSPC' || code === 'EDQUOT') return new DiskQuotaExceededError(undefined, path);
  return err instanceof Error ? err : new Error(String(err));
}
