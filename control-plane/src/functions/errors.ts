import { KilnError } from '../errors.js';

export class FunctionNotFoundError extends KilnError {
  constructor(name: string, qualifier?: string) {
    const what = qualifier && qualifier !== '$LATEST' ? `version ${qualifier} of function "${name}"` : `function "${name}"`;
    super('FunctionNotFound', 404, `${what} does not exist`, { functionName: name, ...(qualifier ? { qualifier } : {}) });
  }
}

export class FunctionExistsError extends KilnError {
  constructor(name: string) {
    super('FunctionExists', 409, `function "${name}" already exists; update it with PUT /api/v1/functions/${name}`, { functionName: name });
  }
}

/** Two writers raced on the same function; the loser retries with the new state. */
export class FunctionConflictError extends KilnError {
  constructor(name: string, detail: string) {
    super('FunctionConflict', 409, `function "${name}" changed concurrently: ${detail}`, { functionName: name });
  }
}

export class DeadLetterNotFoundError extends KilnError {
  constructor(name: string, id: string) {
    super('DeadLetterNotFound', 404, `dead letter "${id}" of function "${name}" does not exist`, { functionName: name, id });
  }
}

/** An invocation payload over Lambda's limits (6 MB sync, 1 MB async). */
export class PayloadTooLargeError extends KilnError {
  constructor(bytes: number, maxBytes: number, mode: string) {
    super('PayloadTooLarge', 413, `${mode} invocation payload is ${bytes} bytes; the limit is ${maxBytes}`, { bytes, maxBytes });
  }
}

/** The invocation payload is not JSON (Lambda's InvalidRequestContentException). */
export class InvalidPayloadError extends KilnError {
  constructor(detail: string) {
    super('InvalidRequestContent', 400, `could not parse the request body as JSON: ${detail}`);
  }
}
