import { Hono } from 'hono';
import type { Redis } from 'ioredis';
import { bodyLimit } from 'hono/body-limit';
import { ValidationError } from '../../errors.js';
import { SYNC_PAYLOAD_BYTES, type FunctionInvoker, type Invocation } from '../../functions/invoker.js';
import { streamInvocation, type ResponseChunk } from '../../invocation/stream.js';
import { streamEvent } from '../lambda/eventstream.js';
import { lambdaError, lambdaErrorForCode, onLambdaError } from '../lambda/errors.js';
import { functionErrorPayload, lambdaTarget } from '../lambda/shapes.js';
import { redisGuard } from '../redis-guard.js';
import type { AppEnv } from '../router.js';
import { decodeClientContext, logTail } from './lambda.js';

/** InvokeWithResponseStream's path (Lambda's 2021-11-15 API). */
export const STREAM_BASE = '/2021-11-15/functions';
const EVENT_STREAM = 'application/vnd.amazon.eventstream';

/**
 * Lambda's InvokeWithResponseStream: the function's response as an event stream, each
 * PayloadChunk sent as the handler writes it, then InvokeComplete with ErrorCode, ErrorDetails
 * and (LogType Tail) LogResult. A handler that does not stream comes back as one chunk. Failures
 * before the first chunk (no such function, throttling, Kiln's own) are ordinary Lambda errors;
 * after it the status is already sent, so they end the stream as InvokeComplete's ErrorCode.
 * Tenancy as for Invoke: the caller's own functions only (functions.resolve in the invoker).
 */
export function lambdaStreamRoutes(invoker: FunctionInvoker, redis?: Redis): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.onError(onLambdaError);
  if (redis) app.use('/2021-11-15/*', redisGuard(redis, []));
  const invokeLimit = bodyLimit({ maxSize: SYNC_PAYLOAD_BYTES, onError: (c) => lambdaError(c, 'RequestTooLargeException', 413, `request payload is larger than ${SYNC_PAYLOAD_BYTES} bytes`) });

  app.post(`${STREAM_BASE}/:name/response-streaming-invocations`, invokeLimit, async (c) => {
    const { fn, qualifier } = lambdaTarget(c);
    const type = c.req.header('X-Amz-Invocation-Type') ?? 'RequestResponse';
    if (type !== 'RequestResponse' && type !== 'DryRun') throw new ValidationError(`X-Amz-Invocation-Type must be RequestResponse or DryRun; got "${type.slice(0, 40)}"`, { field: 'InvocationType' });
    const logType = c.req.header('X-Amz-Log-Type') ?? 'None';
    if (logType !== 'None' && logType !== 'Tail') throw new ValidationError(`X-Amz-Log-Type must be None or Tail; got "${logType.slice(0, 40)}"`, { field: 'LogType' });
    const clientContext = decodeClientContext(c.req.header('X-Amz-Client-Context'));
    const payload = await c.req.text();
    const who = c.get('principal');
    const { chunks, done } = streamInvocation((onChunk) => invoker.invoke(who, fn, qualifier, payload, type, undefined, clientContext, onChunk));
    const head = await chunks.read();
    if (head.done) {
      // No chunk: over before any byte (or refused: `done` throws, and onError answers).
      const out = await done;
      c.header('x-amzn-RequestId', out.id);
      c.header('X-Amz-Executed-Version', out.function.version);
      if (!out.record) return c.body(null, 204);
      const error = out.record.error;
      if (error?.errorType.startsWith('Kiln.')) return lambdaErrorForCode(c, error.errorType.slice(5), 500, error.errorMessage);
      c.header('Content-Type', EVENT_STREAM);
      return c.body(new Uint8Array(complete(out, logType === 'Tail')), 200);
    }
    const first = head.value;
    c.header('x-amzn-RequestId', first.id);
    c.header('X-Amz-Executed-Version', first.version);
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => controller.enqueue(payloadChunk(first)),
      pull: async (controller) => {
        const next = await chunks.read();
        if (!next.done) return controller.enqueue(payloadChunk(next.value));
        // A failure of Kiln's after the status went out (the wait timed out, Redis went away) ends the stream as the service's.
        controller.enqueue(await done.then((out) => complete(out, logType === 'Tail'), (err: unknown) => completeEvent('ServiceException', err instanceof Error ? err.message : String(err), '')));
        controller.close();
      },
      cancel: () => chunks.cancel(),
    });
    c.header('Content-Type', EVENT_STREAM);
    return c.body(body, 200);
  });
  return app;
}

function payloadChunk(chunk: ResponseChunk): Uint8Array {
  return streamEvent('PayloadChunk', 'application/octet-stream', chunk.data);
}

/** InvokeComplete: ErrorCode is the error's type (Sandbox.Timedout, Function.ResponseSizeTooLarge, a handler's Error...), ErrorDetails its message. */
function completeEvent(errorCode: string, errorDetails: string, logResult: string): Uint8Array {
  const body: Record<string, string> = {};
  if (errorCode) body.ErrorCode = errorCode;
  if (errorDetails) body.ErrorDetails = errorDetails;
  if (logResult) body.LogResult = logResult;
  return streamEvent('InvokeComplete', 'application/json', Buffer.from(JSON.stringify(body)));
}

function complete(out: Invocation, tail: boolean): Uint8Array {
  const r = out.record;
  const logs = tail && r ? logTail(r.logs) : '';
  if (!r || r.status === 'succeeded') return completeEvent('', '', logs);
  const payload = functionErrorPayload(out.function.runtime, out.id, r.error, r.status) as { errorType: string; errorMessage: string };
  // Kiln's own failures mid-stream are the service's: ServiceException, as Lambda names its own.
  const code = payload.errorType.startsWith('Kiln.') ? 'ServiceException' : payload.errorType;
  return completeEvent(code, payload.errorMessage, logs);
}
