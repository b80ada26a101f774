import type {
  handleBidiStreamingCall,
  handleClientStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  Server,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { isAuthorized } from './auth.js';
import { serviceError, UnauthenticatedError } from './error-channel.js';

/** Marks the methods built here, so that {@link Rpc.serve} can refuse any that is not. */
const GUARDED = Symbol('kiln.rpc.guarded');

function guarded<T extends object>(fn: T): T {
  return Object.assign(fn, { [GUARDED]: true });
}

/**
 * Builds the methods of every executor service, so that each one checks the agent token before
 * anything else and sends every failure, thrown or rejected, synchronous or not, through the
 * one error channel (error-channel.ts): no exception reaches grpc-js, which would answer
 * UNKNOWN. Service modules write plain handlers; {@link serve} registers a service only when
 * all of its methods came from here.
 */
export class Rpc {
  constructor(private readonly token: string) {}

  /** A unary method: the handler's value (or promise) is the answer. */
  unary<Req, Res>(handler: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res> | Res): handleUnaryCall<Req, Res> {
    return guarded((call: ServerUnaryCall<Req, Res>, callback: (err: unknown, res?: Res) => void) => {
      if (!isAuthorized(call.metadata, this.token)) return callback(serviceError(new UnauthenticatedError()));
      // The Promise constructor turns a synchronous throw of the handler into a rejection.
      new Promise<Res>((resolve) => resolve(handler(call.request, call))).then(
        (res) => callback(null, res),
        (err: unknown) => callback(serviceError(err)),
      );
    }) as handleUnaryCall<Req, Res>;
  }

  /** A server-streaming method: the handler writes messages; its settling ends the stream. */
  serverStream<Req, Res>(handler: (call: ServerWritableStream<Req, Res>) => Promise<void>): handleServerStreamingCall<Req, Res> {
    return guarded((call: ServerWritableStream<Req, Res>) => {
      if (!isAuthorized(call.metadata, this.token)) return void call.emit('error', serviceError(new UnauthenticatedError()));
      new Promise<void>((resolve) => resolve(handler(call))).then(
        () => call.end(),
        (err: unknown) => call.emit('error', serviceError(err)),
      );
    });
  }

  /** A client-streaming method: the handler reads the messages and returns the answer. */
  clientStream<Req, Res>(handler: (call: ServerReadableStream<Req, Res>) => Promise<Res>): handleClientStreamingCall<Req, Res> {
    return guarded((call: ServerReadableStream<Req, Res>, callback: (err: unknown, res?: Res) => void) => {
      if (!isAuthorized(call.metadata, this.token)) {
        drain(call);
        return callback(serviceError(new UnauthenticatedError()));
      }
      new Promise<Res>((resolve) => resolve(handler(call))).then(
        (res) => callback(null, res),
        (err: unknown) => {
          drain(call);
          callback(serviceError(err));
        },
      );
    }) as handleClientStreamingCall<Req, Res>;
  }

  /**
   * A bidirectional method. The handler wires the call's events itself and reports a failure
   * (at any time) through `fail`, which ends the call with it.
   */
  duplex<Req, Res>(handler: (call: ServerDuplexStream<Req, Res>, fail: (err: unknown) => void) => void): handleBidiStreamingCall<Req, Res> {
    return guarded((call: ServerDuplexStream<Req, Res>) => {
      if (!isAuthorized(call.metadata, this.token)) return void call.emit('error', serviceError(new UnauthenticatedError()));
      const fail = (err: unknown): void => void call.emit('error', serviceError(err));
      try {
        handler(call, fail);
      } catch (err) {
        fail(err);
      }
    });
  }

  /** Adds a service whose every method was built by this Rpc (else throws at start-up). */
  serve(server: Server, definition: ServiceDefinition, impl: UntypedServiceImplementation): void {
    for (const name of Object.keys(definition)) {
      const method = impl[name] as { [GUARDED]?: boolean } | undefined;
      if (!method?.[GUARDED]) throw new Error(`method ${name} of ${Object.values(definition)[0]?.path ?? 'a service'} is not built by Rpc: it would skip the token check`);
    }
    server.addService(definition, impl);
  }
}

/**
 * grpc-js holds a status back while a received message waits to be read, and a refused upload
 * stops reading: the client would get its error only once it had sent the whole body. Reading
 * on (and dropping) what still arrives lets it out at once.
 */
function drain(call: ServerReadableStream<unknown, unknown>): void {
  call.on('data', () => undefined);
  call.resume();
}
