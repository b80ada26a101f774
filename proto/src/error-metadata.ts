import { Metadata } from '@grpc/grpc-js';
import { ErrorCode, errorCodeFromJSON, errorCodeToJSON } from './gen/kiln/executor/v1/errors.js';

/**
 * The trailers of the executor's one error channel (see kiln/executor/v1/errors.proto), read
 * and written here for both ends: the executor's services write them, the control plane's
 * grpc-js clients and its lean unary channel read them.
 */
export const ERROR_CODE_KEY = 'kiln-error-code';
/** A binary (-bin) key: the data quotes client paths and names, which need not be ASCII. */
export const ERROR_DATA_KEY = 'kiln-error-data-bin';

/** What a failed call says beside its gRPC status. */
export interface ExecutorFailure {
  code: ErrorCode;
  data: Record<string, unknown>;
}

/** The two trailers for a failure, as grpc-js metadata. */
export function errorMetadata(code: ErrorCode, data: Record<string, unknown>): Metadata {
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_KEY, errorCodeToJSON(code));
  metadata.set(ERROR_DATA_KEY, Buffer.from(JSON.stringify(data), 'utf8'));
  return metadata;
}

/**
 * Reads a failure's code and data. `get` returns a trailer's value: grpc-js metadata gives a
 * Buffer for -bin keys; raw HTTP/2 trailers give a string, base64 for -bin keys (the gRPC
 * wire format). Undefined when the call carried no code (a transport failure, or a peer that
 * is not a Kiln executor); unknown names read as ERROR_CODE_UNSPECIFIED.
 */
export function readErrorMetadata(get: (key: string) => string | Buffer | undefined): ExecutorFailure | undefined {
  const name = get(ERROR_CODE_KEY);
  if (name === undefined) return undefined;
  const code = errorCodeFromName(String(name));
  let data: Record<string, unknown> = {};
  const raw = get(ERROR_DATA_KEY);
  if (raw !== undefined) {
    try {
      const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : Buffer.from(raw, 'base64').toString('utf8');
      const parsed = JSON.parse(text) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) data = parsed as Record<string, unknown>;
    } catch {
      // Malformed data is dropped: the code and the message still say what went wrong.
    }
  }
  return { code, data };
}

/** Reads the failure from grpc-js metadata (a ServiceError's `metadata`). */
export function failureOf(metadata: Metadata | undefined): ExecutorFailure | undefined {
  if (!metadata || typeof metadata.get !== 'function') return undefined;
  return readErrorMetadata((key) => metadata.get(key)[0]);
}

function errorCodeFromName(name: string): ErrorCode {
  try {
    const code = errorCodeFromJSON(name);
    return code === ErrorCode.UNRECOGNIZED ? ErrorCode.ERROR_CODE_UNSPECIFIED : code;
  } catch {
    return ErrorCode.ERROR_CODE_UNSPECIFIED;
  }
}
