'use strict';
// Response streaming for the Node runner, as the AWS nodejs20.x runtime offers it: the
// `awslambda` global with `streamifyResponse` and `HttpResponseStream.from`, and the response
// stream a streaming handler writes to. Every write goes to the executor at once as `chunk`
// messages (PROTOCOL.md), so the caller reads it while the handler still runs.

const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');
const STREAM_RESPONSE = 'response';
/** What HttpResponseStream.from sets: the body starts with a JSON prelude and 8 NUL bytes. */
const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
/** Larger writes go out in pieces: the executor bounds a message's length (channel.ts). */
const MAX_MESSAGE_BYTES = 256 * 1024;

class HttpResponseStream {
  /** Sends `prelude` (statusCode, headers, cookies) before the body, as function URLs expect. */
  static from(underlyingStream, prelude) {
    underlyingStream.setContentType(HTTP_INTEGRATION);
    const text = JSON.stringify(prelude);
    underlyingStream._onBeforeFirstWrite = (write) => {
      write(Buffer.from(text));
      write(Buffer.alloc(8));
    };
    return underlyingStream;
  }
}

/** Sets `globalThis.awslambda`, before the handler's module loads (it calls streamifyResponse at import). */
function installAwslambda() {
  globalThis.awslambda = {
    streamifyResponse(handler, options) {
      if (typeof handler !== 'function') throw new TypeError('awslambda.streamifyResponse expects a function');
      handler[HANDLER_STREAMING] = STREAM_RESPONSE;
      if (options && Number.isInteger(options.highWaterMark) && options.highWaterMark > 0) handler[HANDLER_HIGHWATERMARK] = options.highWaterMark;
      return handler;
    },
    HttpResponseStream,
  };
}

function isStreaming(handler) {
  return Boolean(handler) && handler[HANDLER_STREAMING] === STREAM_RESPONSE;
}

/**
 * Runs a streaming handler: `handler(event, responseStream, context)`. `sendChunk(buf,
 * contentType)` forwards bytes (contentType on the first only) and returns false when the channel
 * is full: the stream then waits for `waitDrain(cb)` before taking the next write, so a handler
 * that writes faster than the executor reads is held back (its writes buffer in the stream, up
 * to its highWaterMark, as on AWS) instead of growing this process's memory. `done(err, contentType)` is
 * called once, when the stream has ended and the handler's promise settled (an error: the
 * handler threw or rejected, or destroyed the stream with one). A handler that resolves
 * without ending the stream has it ended for it; one that neither returns a promise nor ends
 * the stream has it ended once the event loop is empty (`setBeforeExit`, as for callbacks).
 */
function invokeStreaming(handler, event, context, sendChunk, waitDrain, done, setBeforeExit) {
  const { Writable } = require('stream');
  let contentType = DEFAULT_CONTENT_TYPE;
  let started = false;
  let finished = false;
  const forward = (buf) => {
    let flowing = true;
    for (let off = 0; off < buf.length; off += MAX_MESSAGE_BYTES) {
      flowing = sendChunk(buf.subarray(off, off + MAX_MESSAGE_BYTES), started ? undefined : contentType) && flowing;
      started = true;
    }
    return flowing;
  };
  const stream = new Writable({
    highWaterMark: handler[HANDLER_HIGHWATERMARK],
    write(chunk, _encoding, cb) {
      begin();
      if (!chunk.length || forward(chunk)) cb();
      else waitDrain(() => cb());
    },
    final(cb) {
      begin();
      cb();
    },
  });
  const begin = () => {
    const before = stream._onBeforeFirstWrite;
    if (typeof before !== 'function') return;
    stream._onBeforeFirstWrite = undefined;
    before(forward);
  };
  stream.setContentType = (type) => {
    if (started) throw new Error('Tried to set content type after the response stream started');
    contentType = String(type);
  };
  const finish = (err) => {
    if (finished) return;
    finished = true;
    done(err, contentType);
  };
  let settled = false;
  stream.on('error', (err) => finish(err || new Error('the response stream was destroyed')));
  stream.on('finish', () => {
    if (settled) finish(null);
  });
  const endAnd = () => {
    settled = true;
    if (stream.writableFinished) finish(null);
    else if (!stream.writableEnded) stream.end();
  };
  // A promise that can no longer settle (the loop is empty) ends the stream as well.
  setBeforeExit(endAnd);
  try {
    const result = handler(event, stream, context);
    if (result && typeof result.then === 'function') {
      result.then(endAnd, (err) => finish(err === undefined || err === null ? new Error('handled') : err));
    } else {
      settled = true;
      if (stream.writableFinished) finish(null);
    }
  } catch (err) {
    finish(err);
  }
}

module.exports = { installAwslambda, isStreaming, invokeStreaming };
