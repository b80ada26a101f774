/**
 * Kiln's errors as classes. Every error body Kiln sends is `{ error: { code, message, data } }`;
 * `errorFrom` turns it into the class ERROR_MAP names for its code (or, for a code this SDK does
 * not know yet, the class of its HTTP status), so callers write `catch (e) { if (e instanceof
 * SessionNotFoundError) ... }` and never parse bodies.
 */
export class KilnError extends Error {
  /** Kiln's stable error code, e.g. `SessionNotFound`. */
  readonly code: string;
  /** The HTTP status (0 for errors raised by the SDK itself). */
  readonly status: number;
  /** The error's data, e.g. `{ sessionId }` or `{ quota, limit, used }`. */
  readonly data: Record<string, unknown>;
  constructor(code: string, message: string, status = 0, data: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    this.data = data;
  }
  /** Whether the same request may succeed later (the SDK retries these itself first). */
  get retryable(): boolean {
    return false;
  }
}

/** 400: the request is wrong; the message says what to change. */
export class InvalidRequestError extends KilnError {}
/** 401: no API key, or one this deployment does not know. */
export class AuthenticationError extends KilnError {}
/** 403: the key lacks the scope the request needs (`data.scope`). */
export class ForbiddenError extends KilnError {}
/** 404: no such resource (another tenant's is unknown too). */
export class NotFoundError extends KilnError {}
export class SessionNotFoundError extends NotFoundError {
  get sessionId(): string | undefined {
    return this.data.sessionId as string | undefined;
  }
}
export class FunctionNotFoundError extends NotFoundError {}
export class TemplateNotFoundError extends NotFoundError {}
export class FileNotFoundError extends NotFoundError {}
export class ProcessNotFoundError extends NotFoundError {}
export class ExecutionNotFoundError extends NotFoundError {}
export class SnapshotNotFoundError extends NotFoundError {}
export class VolumeNotFoundError extends NotFoundError {}
/** 409: a name is taken or a concurrent change won. */
export class ConflictError extends KilnError {}
/** The session is paused and was created with `autoResume: false`: `session.resume()` first. */
export class SessionPausedError extends ConflictError {}
/** A live (running, paused or hibernated) session mounts the volume: delete that session first. */
export class VolumeInUseError extends ConflictError {}
/** 410: the session's sandbox is gone (its executor died); create a new session. */
export class SessionLostError extends KilnError {}
/** 413: the body is over the server's limit (`maxBytes`, KILN_MAX_BODY_BYTES). */
export class PayloadTooLargeError extends KilnError {
  get maxBytes(): number | undefined {
    return this.data.maxBytes as number | undefined;
  }
}
/** 429: a quota (`data.quota`) or a full queue. Retried by the SDK, honouring Retry-After. */
export class RateLimitError extends KilnError {
  /** Seconds the server asked to wait. */
  retryAfterSeconds?: number;
  override get retryable(): boolean {
    return true;
  }
}
/** 429 QuotaExceeded: the tenant is at a quota (`quota`, `limit`, `used`). */
export class QuotaExceededError extends RateLimitError {
  get quota(): string | undefined {
    return this.data.quota as string | undefined;
  }
}
/** 502/503: no capacity, an executor was lost, or Redis is down. Retried by the SDK. */
export class UnavailableError extends KilnError {
  retryAfterSeconds?: number;
  override get retryable(): boolean {
    return true;
  }
}
/** 500: Kiln's own fault; the control plane's log has the details. */
export class InternalError extends KilnError {}
/** The stream (process output, terminal) ended without its final event. */
export class StreamError extends KilnError {}

type ErrorClass = new (code: string, message: string, status: number, data: Record<string, unknown>) => KilnError;

/** The one table from Kiln's error codes to classes. */
export const ERROR_MAP: Record<string, ErrorClass> = {
  InvalidRequest: InvalidRequestError,
  InvalidJSON: InvalidRequestError,
  InvalidRequestContent: InvalidRequestError,
  InvalidZip: InvalidRequestError,
  PathOutsideWorkspace: InvalidRequestError,
  Unauthorized: AuthenticationError,
  Forbidden: ForbiddenError,
  SessionAccessDenied: ForbiddenError,
  RouteNotFound: NotFoundError,
  SessionNotFound: SessionNotFoundError,
  FunctionNotFound: FunctionNotFoundError,
  AliasNotFound: FunctionNotFoundError,
  TemplateNotFound: TemplateNotFoundError,
  FileNotFound: FileNotFoundError,
  ProcessNotFound: ProcessNotFoundError,
  ExecutionNotFound: ExecutionNotFoundError,
  SnapshotNotFound: SnapshotNotFoundError,
  VolumeNotFound: VolumeNotFoundError,
  VolumeExists: ConflictError,
  VolumeInUse: VolumeInUseError,
  FunctionExists: ConflictError,
  FunctionConflict: ConflictError,
  SessionBusy: ConflictError,
  SessionPaused: SessionPausedError,
  PauseUnsupported: ConflictError,
  TemplateExists: ConflictError,
  TemplateInUse: ConflictError,
  SessionLost: SessionLostError,
  PayloadTooLarge: PayloadTooLargeError,
  WorkspaceTooLarge: PayloadTooLargeError,
  QuotaExceeded: QuotaExceededError,
  TooManyRequests: RateLimitError,
  ServiceUnavailable: UnavailableError,
  NoCapacity: UnavailableError,
  ExecutorLost: UnavailableError,
  InternalError: InternalError,
};

const BY_STATUS: Record<number, ErrorClass> = {
  400: InvalidRequestError,
  401: AuthenticationError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  410: SessionLostError,
  413: PayloadTooLargeError,
  429: RateLimitError,
  502: UnavailableError,
  503: UnavailableError,
  504: UnavailableError,
};

/** Seconds from a Retry-After header (delta-seconds or an HTTP date), if any. */
export function retryAfterSeconds(header: string | null): number | undefined {
  if (!header) return undefined;
  const n = Number(header);
  if (Number.isFinite(n) && n >= 0) return n;
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

/** The typed error for a failed response's status, body text and headers. */
export function errorFrom(status: number, text: string, headers?: Headers): KilnError {
  let code = '';
  let message = text.slice(0, 500) || `HTTP ${status}`;
  let data: Record<string, unknown> = {};
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; data?: unknown } };
    if (body.error && typeof body.error.code === 'string') {
      code = body.error.code;
      if (typeof body.error.message === 'string') message = body.error.message;
      if (body.error.data && typeof body.error.data === 'object') data = body.error.data as Record<string, unknown>;
    }
  } catch {
    // Not Kiln's JSON error body (a proxy's page, say): the status decides the class below.
  }
  const Class = ERROR_MAP[code] ?? BY_STATUS[status] ?? (status >= 500 ? InternalError : KilnError);
  const err = new Class(code || `Http${status}`, message, status, data);
  if (err instanceof RateLimitError || err instanceof UnavailableError) {
    err.retryAfterSeconds = retryAfterSeconds(headers?.get('retry-after') ?? null) ?? (typeof data.retryAfterSeconds === 'number' ? data.retryAfterSeconds : undefined);
  }
  return err;
}
