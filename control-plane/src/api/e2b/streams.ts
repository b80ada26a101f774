import { Code, ConnectError, type HandlerContext } from '@connectrpc/connect';
import { KilnError } from '../../errors.js';
import { toConnectError } from './errors.js';

/** E2B's SDKs ask for keepalive events every `Keepalive-Ping-Interval` seconds on long streams. */
export function keepaliveMs(ctx: HandlerContext): number {
  const s = Number(ctx.requestHeader.get('keepalive-ping-interval') ?? '');
  return Number.isFinite(s) && s >= 1 ? Math.min(s, 600) * 1000 : 50_000;
}

/**
 * Yields what `source` yields, and `keepalive()` whenever it has been quiet for `everyMs`. Ending
 * (the client went, or the stream was answered) ends `source` too, which cancels its RPC.
 */
export async function* withKeepalive<T, K>(source: AsyncGenerator<T>, everyMs: number, keepalive: () => K): AsyncGenerator<T | K> {
  let pending: Promise<IteratorResult<T>> | undefined;
  try {
    for (;;) {
      pending ??= source.next();
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<'tick'>((resolve) => (timer = setTimeout(() => resolve('tick'), everyMs)));
      const next = await Promise.race([pending, tick]).finally(() => clearTimeout(timer));
      if (next === 'tick') {
        yield keepalive();
        continue;
      }
      pending = undefined;
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // Ending a generator that is waiting in next() queues the return after it: the RPC
    // underneath (SessionAgent.stream) is cancelled by its own finally once it settles.
    pending?.catch(() => undefined);
    void source.return(undefined).catch(() => undefined);
  }
}

/**
 * A failure as the Connect error to answer with. Once the call is over (the client went, or its
 * deadline passed) Connect unwinds the handler with what it aborted with, sometimes nothing:
 * that is the call's end, not a fault of ours, and no one is left to answer.
 */
function failure(err: unknown, ctx: HandlerContext): ConnectError {
  if (ctx.signal.aborted && !(err instanceof KilnError)) return err instanceof ConnectError ? err : new ConnectError('the call ended', Code.Canceled);
  return toConnectError(err);
}

/** A Connect method whose every failure crosses as a Connect error (errors.ts, the one table). */
export function unary<Req, Res>(fn: (req: Req, ctx: HandlerContext) => Promise<Res>): (req: Req, ctx: HandlerContext) => Promise<Res> {
  return async (req, ctx) => {
    try {
      return await fn(req, ctx);
    } catch (err) {
      throw failure(err, ctx);
    }
  };
}

/** The server-streaming form of {@link unary}. */
export function streaming<Req, Res>(fn: (req: Req, ctx: HandlerContext) => AsyncGenerator<Res>): (req: Req, ctx: HandlerContext) => AsyncGenerator<Res> {
  return async function* (req, ctx) {
    try {
      yield* fn(req, ctx);
    } catch (err) {
      throw failure(err, ctx);
    }
  };
}
