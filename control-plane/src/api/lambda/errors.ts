import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { KilnError, unavailableOr } from '../../errors.js';
import { log } from '../../log.js';

type Status = 400 | 404 | 409 | 412 | 413 | 429 | 500 | 502 | 503 | 504;

/**
 * The one table from Kiln error codes to Lambda's exception names. The AWS SDK picks the
 * exception class from the x-amzn-ErrorType header, so this is what makes
 * `err instanceof ResourceNotFoundException` work for Kiln's clients.
 */
const LAMBDA_ERRORS: Record<string, [string, Status]> = {
  FunctionNotFound: ['ResourceNotFoundException', 404],
  // CreateFunction naming (by ARN) a tenant the key may not reach: as if it did not exist.
  TenantNotFound: ['ResourceNotFoundException', 404],
  DeadLetterNotFound: ['ResourceNotFoundException', 404],
  TemplateNotFound: ['ResourceNotFoundException', 404],
  InvalidRequest: ['InvalidParameterValueException', 400],
  InvalidZip: ['InvalidParameterValueException', 400],
  InvalidRequestContent: ['InvalidRequestContentException', 400],
  InvalidJSON: ['InvalidRequestContentException', 400],
  AliasNotFound: ['ResourceNotFoundException', 404],
  EventInvokeConfigNotFound: ['ResourceNotFoundException', 404],
  FunctionExists: ['ResourceConflictException', 409],
  AliasExists: ['ResourceConflictException', 409],
  VersionInUse: ['ResourceConflictException', 409],
  PreconditionFailed: ['PreconditionFailedException', 412],
  FunctionConflict: ['ResourceConflictException', 409],
  // Function URLs (functions/urls.ts); enum values Lambda lacks or Kiln does not implement are
  // Lambda's ValidationException.
  FunctionUrlNotFound: ['ResourceNotFoundException', 404],
  FunctionUrlExists: ['ResourceConflictException', 409],
  UnsupportedSetting: ['ValidationException', 400],
  PayloadTooLarge: ['RequestTooLargeException', 413],
  TooManyRequests: ['TooManyRequestsException', 429],
  NoCapacity: ['TooManyRequestsException', 429],
  // The AWS SDK's standard retry strategy retries 500, 502, 503 and 504 (and throttling types).
  ServiceUnavailable: ['ServiceException', 503],
};

/**
 * TooManyRequestsException's `Reason` for each Kiln quota: AWS's own names where AWS has the
 * limit (concurrency, the caller's request rate); AWS has no function-count or session limits,
 * so those are Kiln's, in AWS's style. The SDK exposes it as `err.Reason`.
 */
const QUOTA_REASONS: Record<string, string> = {
  executions: 'ConcurrentInvocationLimitExceeded',
  requestsPerSecond: 'CallerRateLimitExceeded',
  functions: 'FunctionLimitExceeded',
  sessions: 'SessionLimitExceeded',
  memoryMB: 'MemoryLimitExceeded',
  reservedConcurrency: 'ReservedFunctionConcurrentInvocationLimitExceeded',
};

/** An AWS-shaped error response; both `message` and `Message` because the SDK reads either. */
export function lambdaError(c: Context, type: string, status: Status, message: string, throttle: { reason?: string; retryAfterSeconds?: number } = {}): Response {
  c.header('x-amzn-ErrorType', type);
  if (status === 429 || status === 503) c.header('Retry-After', String(throttle.retryAfterSeconds ?? 1));
  return c.json({ Type: status >= 500 ? 'Service' : 'User', message, Message: message, ...(status === 429 ? { Reason: throttle.reason ?? 'ConcurrentInvocationLimitExceeded' } : {}) }, status);
}

/** Maps a Kiln error code (as thrown, or as `Kiln.<code>` in a record) to its Lambda response. */
export function lambdaErrorForCode(c: Context, code: string, status: number, message: string): Response {
  const mapped = LAMBDA_ERRORS[code];
  if (mapped) return lambdaError(c, mapped[0], mapped[1], message);
  return lambdaError(c, 'ServiceException', status >= 500 && status <= 504 ? (status as Status) : 500, message);
}

/** onError of the Lambda routes. Unknown errors are our fault: ServiceException, logged. */
export function onLambdaError(thrown: Error, c: Context): Response {
  const err = unavailableOr(thrown) as Error;
  if (err instanceof KilnError && err.code === 'QuotaExceeded') {
    const { quota, retryAfterSeconds } = err.data as { quota: string; retryAfterSeconds: number };
    return lambdaError(c, 'TooManyRequestsException', 429, err.message, { reason: QUOTA_REASONS[quota] ?? 'ConcurrentInvocationLimitExceeded', retryAfterSeconds });
  }
  if (err instanceof KilnError) return lambdaErrorForCode(c, err.code, err.status, err.message);
  if (err instanceof HTTPException && err.status === 413) return lambdaError(c, 'RequestTooLargeException', 413, 'request body is too large');
  if (err instanceof HTTPException && err.status < 500) return lambdaError(c, 'InvalidRequestContentException', 400, err.message || 'request rejected');
  log('error', 'unhandled error in a Lambda route', { path: c.req.path, error: err.stack ?? err.message });
  return lambdaError(c, 'ServiceException', 500, 'internal error; see the control plane log');
}
