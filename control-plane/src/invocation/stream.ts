/**
 * Response streaming (Lambda's InvokeWithResponseStream, function URLs in RESPONSE_STREAM mode):
 * a job submitted with `stream` has its body travel as chunks, in order, from the executor's
 * InvokeStream RPC through the worker that runs it to the replica whose caller waits (in memory
 * when it is the same one, else on that replica's reply channel: queue/replies.ts), ahead of the
 * job's record. Nothing on the way gathers the whole body; the executor bounds its size.
 */

/** A piece of a streamed response. */
export interface ResponseChunk {
  /** The job (request id) it belongs to. */
  id: string;
  /** The function version that runs (X-Amz-Executed-Version), known before the record is. */
  version: string;
  data: Buffer;
  /** On the first chunk only: the stream's content type (application/octet-stream unless the handler set one). */
  contentType?: string;
}

export type ChunkListener = (chunk: ResponseChunk) => void;

/** The content type `awslambda.HttpResponseStream.from` gives a stream: a JSON prelude, 8 NUL bytes, then the body. */
export const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';

/**
 * Runs a streaming invocation for an HTTP edge: `run` gets the listener to pass on, `chunks`
 * yields the chunks in order (ending once the invocation settled) and `done` is its result. An
 * edge reads the first chunk before it answers: the stream ended without one means the
 * invocation is over (or failed before it began: `done` rejects, and the edge answers with that
 * error, not a 200). A reader that stops early (the client went away) only stops being fed: the
 * invocation runs to its end, as on Lambda.
 */
export function streamInvocation<T>(run: (onChunk: ChunkListener) => Promise<T>): { chunks: ReadableStreamDefaultReader<ResponseChunk>; done: Promise<T> } {
  let controller!: ReadableStreamDefaultController<ResponseChunk>;
  let open = true;
  const stream = new ReadableStream<ResponseChunk>({
    start: (c) => void (controller = c),
    cancel: () => void (open = false),
  });
  const done = run((chunk) => {
    if (open) controller.enqueue(chunk);
  });
  const end = (): void => {
    if (open) controller.close();
    open = false;
  };
  // The rejection is the edge's to answer (it awaits `done`); here it only ends the chunks.
  done.then(end, end);
  return { chunks: stream.getReader(), done };
}
