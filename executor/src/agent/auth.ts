import { timingSafeEqual } from 'node:crypto';
import { Metadata, status, type ServerUnaryCall, type sendUnaryData, type ServiceError } from '@grpc/grpc-js';

/** Builds a gRPC error with a status code the control plane maps to its own errors. */
export function grpcError(code: status, message: string): ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new Metadata() });
}

/** True when the call carries `authorization: Bearer <token>` (constant-time compare). */
export function isAuthorized(metadata: Metadata, token: string): boolean {
  if (!token) return true;
  const header = metadata.get('authorization')[0];
  if (typeof header !== 'string') return false;
  const given = Buffer.from(header);
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>) => Promise<Res>;

/**
 * Adapts an async handler to grpc-js: checks the token, and turns thrown errors into
 * statuses through `mapError` so that no exception escapes into the server.
 */
export function unary<Req, Res>(token: string, handler: Unary<Req, Res>, mapError: (err: unknown) => ServiceError) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    if (!isAuthorized(call.metadata, token)) {
      callback(grpcError(status.UNAUTHENTICATED, 'missing or wrong agent token'));
      return;
    }
    let result: Promise<Res>;
    try {
      result = handler(call);
    } catch (err) {
      // A handler that throws before it returns its promise (a lookup of an unknown sandbox,
      // a bad argument) is mapped like a rejection, not left to grpc-js as UNKNOWN.
      callback(mapError(err));
      return;
    }
    result.then(
      (res) => callback(null, res),
      (err: unknown) => callback(mapError(err)),
    );
  };
}
