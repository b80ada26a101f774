// The browser-capable core: fetch, streams, WebSocket. Node-only helpers are in ./node.
export { Kiln, Executions, Templates, type ExecutionFilter, type ExecutionEntry } from './client.js';
export type { KilnOptions, RequestOptions, WebSocketLike } from './http.js';
export { Sessions } from './sessions/sessions.js';
export { Session } from './sessions/session.js';
export { Snapshots } from './snapshots.js';
export { Volumes } from './volumes.js';
export { Commands, CommandHandle, type RunOptions, type BackgroundOptions, type CommandResult, type CommandExit } from './sessions/commands.js';
export { Files, type FileData } from './sessions/files.js';
export { Pty, PtyHandle, type PtyOptions } from './sessions/pty.js';
export { Functions, type DeployParams, type InvokeOptions } from './functions/functions.js';
export { zip, type ZipEntry } from './functions/zip.js';
export {
  KilnError,
  InvalidRequestError,
  AuthenticationError,
  ForbiddenError,
  NotFoundError,
  SessionNotFoundError,
  FunctionNotFoundError,
  TemplateNotFoundError,
  FileNotFoundError,
  ProcessNotFoundError,
  ExecutionNotFoundError,
  SnapshotNotFoundError,
  VolumeNotFoundError,
  VolumeInUseError,
  ConflictError,
  SessionPausedError,
  SessionLostError,
  PayloadTooLargeError,
  RateLimitError,
  QuotaExceededError,
  UnavailableError,
  InternalError,
  StreamError,
  ERROR_MAP,
  errorFrom,
} from './errors.js';
export type * from './schema.js';
