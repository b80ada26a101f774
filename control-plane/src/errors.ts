/**
 * Errors that cross the API edge. Each carries a stable `code`, an HTTP status and data;
 * the API maps them in one place (api/errors.ts). `retryable` tells the queue whether an
 * async job should be tried again.
 */
export class KilnError extends Error {
  constructor(
    readonly code: string,
    readonly status: 400 | 401 | 403 | 404 | 409 | 410 | 412 | 413 | 415 | 416 | 422 | 429 | 500 | 502 | 503 | 504,
    message: string,
    readonly data: Record<string, unknown> = {},
    readonly retryable = false,
  ) {
    super(message);
    this.name = code;
  }
}

export class ValidationError extends KilnError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('InvalidRequest', 400, message, data);
  }
}

export class NotFoundError extends KilnError {
  constructor(kind: string, id: string) {
    super(`${kind}NotFound`, 404, `${kind.toLowerCase()} "${id}" does not exist`, { [`${kind.toLowerCase()}Id`]: id });
  }
}

export class UnknownTemplateError extends KilnError {
  constructor(template: string, known: string[]) {
    super('TemplateNotFound', 404, `template "${template}" does not exist; known templates: ${known.join(', ')}`, { template });
  }
}

export class ServiceUnavailableError extends KilnError {
  constructor(what: string, cause: string) {
    super('ServiceUnavailable', 503, `${what} is unavailable: ${cause}; retry shortly`, { what, retryAfterSeconds: 1 }, true);
  }
}

/** Looks like a Redis outage (ioredis and BullMQ messages): the request can be served once Redis is back. */
export function isRedisDown(err: unknown): boolean {
  return err instanceof Error && /Stream isn't writeable|Connection is closed|ECONNREFUSED|ENOENT.*redis|enableOfflineQueue|MaxRetriesPerRequest/i.test(err.message);
}

/**
 * The one place an error becomes "unavailable, retry": a Redis outage is a ServiceUnavailableError
 * on every surface (REST 503, Lambda 503 ServiceException, MCP ServiceUnavailable); anything
 * else is returned as it is.
 */
export function unavailableOr(err: unknown): unknown {
  return isRedisDown(err) ? new ServiceUnavailableError('redis', (err as Error).message) : err;
}

/** The executor went away, or cannot be reached, before it answered a call (retryable). */
export class ExecutorLostError extends KilnError {
  constructor(executorId: string, detail: string) {
    super('ExecutorLost', 502, `executor ${executorId} was lost before it answered: ${detail}`, { executorId }, true);
  }
}

/** No sandbox could be leased before the request's wait budget ran out. */
export class NoCapacityError extends KilnError {
  constructor(template: string, waitedMs: number) {
    super('NoCapacity', 503, `no sandbox of template "${template}" became free within ${waitedMs} ms`, { template }, true);
  }
}

export class TooManyRequestsError extends KilnError {
  constructor(template: string, retryAfterSeconds: number) {
    super('TooManyRequests', 429, `the queue of template "${template}" is full; retry after ${retryAfterSeconds} s`, { template, retryAfterSeconds });
  }
}

export class TemplateExistsError extends KilnError {
  constructor(template: string) {
    super('TemplateExists', 409, `template "${template}" already exists; use PUT /api/v1/templates/${template} to change it`, { template });
  }
}

/** A template cannot be deleted while work is queued on it or its sandboxes are leased. */
export class TemplateInUseError extends KilnError {
  constructor(template: string, detail: { queuedJobs: number; busySandboxes: number }) {
    super('TemplateInUse', 409, `template "${template}" is in use (${detail.queuedJobs} queued or running jobs, ${detail.busySandboxes} leased sandboxes); retry when it is idle`, { template, ...detail });
  }
}
