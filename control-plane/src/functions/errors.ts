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

export class AliasNotFoundError extends KilnError {
  constructor(name: string, alias: string) {
    super('AliasNotFound', 404, `alias "${alias}" of function "${name}" does not exist`, { functionName: name, alias });
  }
}

export class AliasExistsError extends KilnError {
  constructor(name: string, alias: string) {
    super('AliasExists', 409, `alias "${alias}" of function "${name}" already exists; change it with UpdateAlias (PUT)`, { functionName: name, alias });
  }
}

/** A version an alias points at (or routes to) cannot be deleted, as on AWS. */
export class VersionInUseError extends KilnError {
  constructor(name: string, version: string, alias: string) {
    super('VersionInUse', 409, `version ${version} of function "${name}" is used by alias "${alias}"; point the alias elsewhere or delete it first`, { functionName: name, version, alias });
  }
}

/** The caller's RevisionId is not the current one: someone changed the resource since it read it. */
export class PreconditionFailedError extends KilnError {
  constructor(what: string, given: string) {
    super('PreconditionFailed', 412, `the RevisionId "${given.slice(0, 80)}" of ${what} is not the current one; get it again and retry`, { revisionId: given });
  }
}
