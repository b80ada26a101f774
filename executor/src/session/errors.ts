import { Metadata, status, type ServiceError } from '@grpc/grpc-js';

/**
 * A session operation that failed for a reason the client can fix. It crosses gRPC as a
 * status plus the metadata `kiln-error-code` and `kiln-error-data-bin` (JSON as UTF-8 bytes),
 * which the control plane maps to its own error classes in one table
 * (control-plane/src/agent/session-client.ts).
 */
export class SessionOpError extends Error {
  constructor(
    readonly code: string,
    readonly grpcStatus: status,
    message: string,
    readonly data: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = code;
  }
}

export class PathOutsideWorkspaceError extends SessionOpError {
  constructor(path: string) {
    super('PathOutsideWorkspace', status.INVALID_ARGUMENT, `path "${path}" is outside /workspace; use a path inside /workspace without ".." escapes or symlinks that leave it`, { path });
  }
}

/**
 * The path goes through a symbolic link, or names one where a file or directory is needed.
 * Host-side file operations never follow links (a sandbox could point one anywhere, or swap
 * one in between a check and a use); stat, list, remove and rename act on a link itself.
 */
export class SymlinkNotFollowedError extends SessionOpError {
  constructor(path: string) {
    super('SymlinkNotFollowed', status.FAILED_PRECONDITION, `${path} is or goes through a symbolic link, and the files API does not follow links; use the path the link points to (stat, list, remove and rename act on the link itself)`, { path });
  }
}

export class FileNotFoundError extends SessionOpError {
  constructor(path: string) {
    super('FileNotFound', status.NOT_FOUND, `no such file or directory: ${path}`, { path });
  }
}

export class ProcessNotFoundError extends SessionOpError {
  constructor(pid: number, finished = false) {
    super('ProcessNotFound', status.NOT_FOUND, finished ? `process ${pid} has already exited` : `process ${pid} does not exist in this session`, { pid, finished });
  }
}

export class InvalidSignalError extends SessionOpError {
  constructor(signal: string) {
    super('InvalidSignal', status.INVALID_ARGUMENT, `unknown signal "${signal}"; use a name such as SIGTERM or SIGKILL, or its number`, { signal });
  }
}

export class DiskQuotaExceededError extends SessionOpError {
  constructor(limitMB: number, path?: string) {
    super('DiskQuotaExceeded', status.RESOURCE_EXHAUSTED, `${path ? `no space to write ${path}: ` : ''}the workspace is over its disk quota of ${limitMB} MB, or the file over its size limit of ${limitMB} MB; delete files first`, path ? { limitMB, path } : { limitMB });
  }
}

export class InvalidArgumentError extends SessionOpError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('InvalidRequest', status.INVALID_ARGUMENT, message, data);
  }
}

/** Turns filesystem errno failures into typed errors that name the sandbox path. */
export function fsError(err: unknown, path: string): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new FileNotFoundError(path);
  if (code === 'ENOTDIR') return new SessionOpError('NotADirectory', status.FAILED_PRECONDITION, `a component of ${path} is not a directory`, { path });
  if (code === 'EISDIR') return new SessionOpError('IsADirectory', status.FAILED_PRECONDITION, `${path} is a directory`, { path });
  if (code === 'EEXIST') return new SessionOpError('FileExists', status.ALREADY_EXISTS, `${path} already exists`, { path });
  if (code === 'ENOTEMPTY') return new SessionOpError('DirectoryNotEmpty', status.FAILED_PRECONDITION, `${path} is not empty; pass recursive=true`, { path });
  // Every host-side open uses O_NOFOLLOW and the fd walk turns a link met midway into ELOOP.
  if (code === 'ELOOP') return new SymlinkNotFollowedError(path);
  if (code === 'ENAMETOOLONG') return new SessionOpError('NameTooLong', status.INVALID_ARGUMENT, `a name in ${path.slice(0, 300)} is longer than 255 bytes, or the path longer than 4096`, { path });
  if (code === 'EFBIG' || code === 'ENOSPC' || code === 'EDQUOT') return new SessionOpError('DiskQuotaExceeded', status.RESOURCE_EXHAUSTED, `no space to write ${path}`, { path });
  return err instanceof Error ? err : new Error(String(err));
}

/** Longest message and quoted client string an error carries across gRPC. */
const MAX_MESSAGE = 2048;
const MAX_QUOTED = 512;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/** The gRPC error for any failure of a session RPC; unknown errors are INTERNAL. */
export function sessionServiceError(err: unknown, fallback: (err: unknown) => ServiceError): ServiceError {
  if (!(err instanceof SessionOpError)) return fallback(err);
  const metadata = new Metadata();
  metadata.set('kiln-error-code', err.code);
  // Messages and data quote what the client sent (a path, a signal name), which can be long:
  // both travel in HTTP/2 headers, so each is cut to a size any peer accepts.
  const data = Object.fromEntries(Object.entries(err.data).map(([k, v]) => [k, typeof v === 'string' ? clip(v, MAX_QUOTED) : v]));
  const message = clip(err.message, MAX_MESSAGE);
  // A binary (-bin) key: the data holds client paths and names, and an ASCII metadata value
  // with a non-ASCII or control character throws inside grpc-js (it ended the executor once).
  metadata.set('kiln-error-data-bin', Buffer.from(JSON.stringify(data), 'utf8'));
  return Object.assign(new Error(message), { code: err.grpcStatus, details: message, metadata });
}
