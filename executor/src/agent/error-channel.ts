import { status, type ServiceError } from '@grpc/grpc-js';
import { errorMetadata } from '@kiln/proto/error-metadata';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { AgentError } from '../errors.js';

/**
 * The gRPC status that goes with each code, for gRPC tools other than the control plane (which
 * reads the code alone). One row per ErrorCode: the compiler checks that none is missing.
 */
const GRPC_STATUS: Record<Exclude<ErrorCode, ErrorCode.UNRECOGNIZED>, status> = {
  [ErrorCode.ERROR_CODE_UNSPECIFIED]: status.INTERNAL,
  [ErrorCode.ERROR_CODE_UNAUTHENTICATED]: status.UNAUTHENTICATED,
  [ErrorCode.ERROR_CODE_INVALID_ARGUMENT]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_INTERNAL]: status.INTERNAL,
  [ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND]: status.NOT_FOUND,
  [ErrorCode.ERROR_CODE_EXECUTOR_FULL]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_UNSUPPORTED_RUNNER]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_SANDBOX_BOOT_FAILED]: status.UNAVAILABLE,
  [ErrorCode.ERROR_CODE_FREEZE_UNSUPPORTED]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_VOLUMES_UNSUPPORTED]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_SANDBOX_BUSY]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_SANDBOX_HAS_OTHER_FUNCTION]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_INVALID_CODE_PATH]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_PATH_OUTSIDE_WORKSPACE]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_SYMLINK_NOT_FOLLOWED]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_FILE_NOT_FOUND]: status.NOT_FOUND,
  [ErrorCode.ERROR_CODE_NOT_A_DIRECTORY]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_IS_A_DIRECTORY]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_FILE_EXISTS]: status.ALREADY_EXISTS,
  [ErrorCode.ERROR_CODE_DIRECTORY_NOT_EMPTY]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_NAME_TOO_LONG]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_DISK_QUOTA_EXCEEDED]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_PROCESS_NOT_FOUND]: status.NOT_FOUND,
  [ErrorCode.ERROR_CODE_INVALID_SIGNAL]: status.INVALID_ARGUMENT,
  [ErrorCode.ERROR_CODE_SESSION_ALREADY_BOUND]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_CONTEXT_NOT_FOUND]: status.NOT_FOUND,
  [ErrorCode.ERROR_CODE_CONTEXT_BUSY]: status.FAILED_PRECONDITION,
  [ErrorCode.ERROR_CODE_TOO_MANY_CONTEXTS]: status.RESOURCE_EXHAUSTED,
  [ErrorCode.ERROR_CODE_KERNEL_START_FAILED]: status.FAILED_PRECONDITION,
};

/** Longest message and quoted client string an error carries across gRPC. */
const MAX_MESSAGE = 2048;
const MAX_QUOTED = 512;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/** The refusal of a call without the agent token. */
export class UnauthenticatedError extends AgentError {
  constructor() {
    super(ErrorCode.ERROR_CODE_UNAUTHENTICATED, 'missing or wrong agent token');
  }
}

/**
 * The one way any failure of any executor service leaves the executor: a gRPC status and the
 * trailers `kiln-error-code` and `kiln-error-data-bin` (proto/src/error-metadata.ts). An
 * {@link AgentError} keeps its code; anything else is the executor's own fault and crosses as
 * ERROR_CODE_INTERNAL with its message (the control plane answers 5xx for it).
 */
export function serviceError(err: unknown): ServiceError {
  const known = err instanceof AgentError ? err : new AgentError(ErrorCode.ERROR_CODE_INTERNAL, err instanceof Error ? err.message : String(err));
  // Messages and data quote what the client sent (a path, a signal name), which can be long:
  // both travel in HTTP/2 headers, so each is cut to a size any peer accepts. The data key is
  // binary: an ASCII metadata value with a non-ASCII or control character throws inside grpc-js.
  const data = Object.fromEntries(Object.entries(known.data).map(([k, v]) => [k, typeof v === 'string' ? clip(v, MAX_QUOTED) : v]));
  const message = clip(known.message, MAX_MESSAGE);
  const code = known.code === ErrorCode.UNRECOGNIZED ? ErrorCode.ERROR_CODE_INTERNAL : known.code;
  return Object.assign(new Error(message), { code: GRPC_STATUS[code], details: message, metadata: errorMetadata(code, data) });
}
