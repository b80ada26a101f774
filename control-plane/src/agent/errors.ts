import { status } from '@grpc/grpc-js';
import { failureOf, type ExecutorFailure } from '@kiln/proto/error-metadata';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { ExecutorLostError, KilnError } from '../errors.js';

type Status = KilnError['status'];

/**
 * A failure an executor reported with an {@link ErrorCode} (kiln/executor/v1/errors.proto),
 * rebuilt here. `code` is the public code clients see; `executorCode` what the executor sent.
 */
export class ExecutorCallError extends KilnError {
  constructor(
    readonly executorCode: ErrorCode,
    code: string,
    httpStatus: Status,
    message: string,
    data: Record<string, unknown>,
    retryable = false,
  ) {
    super(code, httpStatus, message, data, retryable);
  }
}

/** The sandbox is gone from its executor (it died, or the executor restarted). */
export class SandboxLostError extends ExecutorCallError {
  constructor(executorId: string, message: string, data: Record<string, unknown>) {
    super(ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND, 'SandboxLost', 502, `executor ${executorId}: ${message}`, { ...data, executorId }, true);
  }
}

/** The executor hosts as many sandboxes as it may: "no room right now", not a failure. */
export class ExecutorFullError extends ExecutorCallError {
  constructor(executorId: string, message: string, data: Record<string, unknown>) {
    super(ErrorCode.ERROR_CODE_EXECUTOR_FULL, 'ExecutorFull', 503, `executor ${executorId}: ${message}`, { ...data, executorId }, true);
  }
}

/** The sandbox runs another invocation: the control plane leased it twice, or a session's caller did. */
export class SandboxBusyError extends ExecutorCallError {
  constructor(executorId: string, message: string, data: Record<string, unknown>) {
    super(ErrorCode.ERROR_CODE_SANDBOX_BUSY, 'SandboxBusy', 503, message, { ...data, executorId }, true);
  }
}

/** The sandbox's runner holds another function version (a runner loads one for its life). */
export class SandboxHasOtherFunctionError extends ExecutorCallError {
  constructor(executorId: string, message: string, data: Record<string, unknown>) {
    super(ErrorCode.ERROR_CODE_SANDBOX_HAS_OTHER_FUNCTION, 'SandboxHasOtherFunction', 409, message, { ...data, executorId });
  }
}

/** How a code with no class of its own becomes a KilnError: public code, HTTP status, retryable. */
interface Row {
  code: string;
  status: Status;
  retryable?: boolean;
}

type Rebuild = (executorId: string, message: string, data: Record<string, unknown>) => KilnError;

const row =
  (executorCode: ErrorCode, r: Row): Rebuild =>
  (_executorId, message, data) =>
    new ExecutorCallError(executorCode, r.code, r.status, message, data, r.retryable ?? false);

/**
 * The one table from the executor's error codes to the control plane's errors. Every code has a
 * row (the compiler checks it). Client mistakes (a bad path, an unknown pid) keep the public codes
 * the API has always answered with; faults of the executor or of Kiln are 5xx.
 */
const TABLE: Record<Exclude<ErrorCode, ErrorCode.UNRECOGNIZED>, Rebuild> = {
  [ErrorCode.ERROR_CODE_UNSPECIFIED]: row(ErrorCode.ERROR_CODE_UNSPECIFIED, { code: 'ExecutorError', status: 500 }),
  [ErrorCode.ERROR_CODE_UNAUTHENTICATED]: row(ErrorCode.ERROR_CODE_UNAUTHENTICATED, { code: 'ExecutorUnauthenticated', status: 502 }),
  [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: row(ErrorCode.ERROR_CODE_INVALID_ARGUMENT, { code: 'InvalidRequest', status: 400 }),
  [ErrorCode.ERROR_CODE_INTERNAL]: row(ErrorCode.ERROR_CODE_INTERNAL, { code: 'ExecutorError', status: 500 }),
  [ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND]: (id, m, d) => new SandboxLostError(id, m, d),
  [ErrorCode.ERROR_CODE_EXECUTOR_FULL]: (id, m, d) => new ExecutorFullError(id, m, d),
  [ErrorCode.ERROR_CODE_UNSUPPORTED_RUNNER]: row(ErrorCode.ERROR_CODE_UNSUPPORTED_RUNNER, { code: 'UnsupportedRunner', status: 502 }),
  [ErrorCode.ERROR_CODE_SANDBOX_BOOT_FAILED]: row(ErrorCode.ERROR_CODE_SANDBOX_BOOT_FAILED, { code: 'SandboxBootFailed', status: 503, retryable: true }),
  // The session's executor cannot freeze (no freezer where it runs): this session cannot be paused.
  [ErrorCode.ERROR_CODE_FREEZE_UNSUPPORTED]: row(ErrorCode.ERROR_CODE_FREEZE_UNSUPPORTED, { code: 'PauseUnsupported', status: 409 }),
  [ErrorCode.ERROR_CODE_VOLUMES_UNSUPPORTED]: row(ErrorCode.ERROR_CODE_VOLUMES_UNSUPPORTED, { code: 'VolumesUnsupported', status: 400 }),
  [ErrorCode.ERROR_CODE_SANDBOX_BUSY]: (id, m, d) => new SandboxBusyError(id, m, d),
  [ErrorCode.ERROR_CODE_SANDBOX_HAS_OTHER_FUNCTION]: (id, m, d) => new SandboxHasOtherFunctionError(id, m, d),
  [ErrorCode.ERROR_CODE_INVALID_CODE_PATH]: row(ErrorCode.ERROR_CODE_INVALID_CODE_PATH, { code: 'InvalidCodePath', status: 400 }),
  [ErrorCode.ERROR_CODE_PATH_OUTSIDE_WORKSPACE]: row(ErrorCode.ERROR_CODE_PATH_OUTSIDE_WORKSPACE, { code: 'PathOutsideWorkspace', status: 400 }),
  [ErrorCode.ERROR_CODE_SYMLINK_NOT_FOLLOWED]: row(ErrorCode.ERROR_CODE_SYMLINK_NOT_FOLLOWED, { code: 'SymlinkNotFollowed', status: 400 }),
  [ErrorCode.ERROR_CODE_FILE_NOT_FOUND]: row(ErrorCode.ERROR_CODE_FILE_NOT_FOUND, { code: 'FileNotFound', status: 404 }),
  [ErrorCode.ERROR_CODE_NOT_A_DIRECTORY]: row(ErrorCode.ERROR_CODE_NOT_A_DIRECTORY, { code: 'NotADirectory', status: 400 }),
  [ErrorCode.ERROR_CODE_IS_A_DIRECTORY]: row(ErrorCode.ERROR_CODE_IS_A_DIRECTORY, { code: 'IsADirectory', status: 400 }),
  [ErrorCode.ERROR_CODE_FILE_EXISTS]: row(ErrorCode.ERROR_CODE_FILE_EXISTS, { code: 'FileExists', status: 409 }),
  [ErrorCode.ERROR_CODE_DIRECTORY_NOT_EMPTY]: row(ErrorCode.ERROR_CODE_DIRECTORY_NOT_EMPTY, { code: 'DirectoryNotEmpty', status: 409 }),
  [ErrorCode.ERROR_CODE_NAME_TOO_LONG]: row(ErrorCode.ERROR_CODE_NAME_TOO_LONG, { code: 'NameTooLong', status: 400 }),
  [ErrorCode.ERROR_CODE_DISK_QUOTA_EXCEEDED]: row(ErrorCode.ERROR_CODE_DISK_QUOTA_EXCEEDED, { code: 'DiskQuotaExceeded', status: 413 }),
  [ErrorCode.ERROR_CODE_PROCESS_NOT_FOUND]: row(ErrorCode.ERROR_CODE_PROCESS_NOT_FOUND, { code: 'ProcessNotFound', status: 404 }),
  [ErrorCode.ERROR_CODE_INVALID_SIGNAL]: row(ErrorCode.ERROR_CODE_INVALID_SIGNAL, { code: 'InvalidSignal', status: 400 }),
  [ErrorCode.ERROR_CODE_SESSION_ALREADY_BOUND]: row(ErrorCode.ERROR_CODE_SESSION_ALREADY_BOUND, { code: 'SessionAlreadyBound', status: 409 }),
  [ErrorCode.ERROR_CODE_CONTEXT_NOT_FOUND]: row(ErrorCode.ERROR_CODE_CONTEXT_NOT_FOUND, { code: 'ContextNotFound', status: 404 }),
  [ErrorCode.ERROR_CODE_CONTEXT_BUSY]: row(ErrorCode.ERROR_CODE_CONTEXT_BUSY, { code: 'ContextBusy', status: 409 }),
  [ErrorCode.ERROR_CODE_TOO_MANY_CONTEXTS]: row(ErrorCode.ERROR_CODE_TOO_MANY_CONTEXTS, { code: 'TooManyContexts', status: 429 }),
  [ErrorCode.ERROR_CODE_KERNEL_START_FAILED]: row(ErrorCode.ERROR_CODE_KERNEL_START_FAILED, { code: 'KernelStartFailed', status: 409 }),
};

/** gRPC statuses that mean the executor itself is gone or unreachable (no code came back). */
const GONE = new Set<number>([status.UNAVAILABLE, status.CANCELLED, status.DEADLINE_EXCEEDED]);

/** A failed call as grpc-js (ServiceError) or the unary channel (RpcError) reports it. */
interface FailedCall {
  code?: number;
  details?: string;
  message?: string;
  metadata?: Parameters<typeof failureOf>[0];
  failure?: ExecutorFailure;
}

/**
 * Rebuilds any failure of a call to executor `executorId` as the control plane's error: a coded
 * failure through the table; a transport failure without a code as {@link ExecutorLostError}
 * (retryable); anything else (an error thrown on this side, a peer that is not a Kiln
 * executor) as a 502 that names the gRPC status. Every client in this folder rejects with it.
 */
export function executorError(err: unknown, executorId: string): Error {
  if (err instanceof KilnError) return err;
  const call = (err ?? {}) as FailedCall;
  const message = call.details || call.message || String(err);
  const failure = call.failure ?? failureOf(call.metadata);
  if (failure) {
    const code = failure.code === ErrorCode.UNRECOGNIZED ? ErrorCode.ERROR_CODE_UNSPECIFIED : failure.code;
    return TABLE[code](executorId, message, failure.data);
  }
  if (typeof call.code === 'number' && GONE.has(call.code)) return new ExecutorLostError(executorId, message);
  if (typeof call.code === 'number') return new KilnError('ExecutorError', 502, `executor ${executorId} answered ${status[call.code] ?? call.code}: ${message}`, { executorId, grpcStatus: call.code });
  return err instanceof Error ? err : new Error(String(err));
}

/** True when a failure means the executor itself is gone or unreachable (its sandboxes with it). */
export function isExecutorGone(err: unknown): boolean {
  if (err instanceof ExecutorLostError) return true;
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'number' && GONE.has(code);
}
