import type { Invocation } from '../../functions/invoker.js';
import { HTTP_INTEGRATION_CONTENT_TYPE, streamInvocation, type ChunkListener, type ResponseChunk } from '../../invocation/stream.js';
import { BAD_GATEWAY, urlResponse, type UrlResponse } from './url-event.js';

/** Longest prelude (status, headers, cookies) a handler may send before its body. */
const MAX_PRELUDE_BYTES = 64 * 1024;
/** What ends HttpResponseStream.from's JSON prelude. */
const DELIMITER = Buffer.alloc(8);

/**
 * A RESPONSE_STREAM function URL's answer: the handler's body as it writes it. A stream made by
 * `awslambda.HttpResponseStream.from` starts with a JSON prelude (statusCode, headers, cookies)
 * and 8 NUL bytes, mapped as a buffered response's fields are (url-event.ts, 502 when Lambda
 * would refuse them); any other stream is a 200 with the stream's content type. Nothing is sent
 * before the prelude is complete, nothing after it is gathered. A handler that fails before its
 * first byte is a 502, as a buffered one; one that fails later ends the body where it was.
 */
export async function streamedUrlResponse(run: (onChunk: ChunkListener) => Promise<Invocation>): Promise<UrlResponse> {
  const { chunks, done } = streamInvocation(run);
  const head = await chunks.read();
  if (head.done) return unstreamed(await done);
  const first: ResponseChunk = head.value;
  const id: [string, string] = ['x-amzn-requestid', first.id];
  let res: UrlResponse = { status: 200, headers: [['content-type', first.contentType ?? 'application/octet-stream']], body: Buffer.alloc(0) };
  let rest = first.data;
  if (first.contentType === HTTP_INTEGRATION_CONTENT_TYPE) {
    for (;;) {
      const at = rest.indexOf(DELIMITER);
      if (at !== -1) {
        res = preludeResponse(rest.subarray(0, at));
        rest = rest.subarray(at + DELIMITER.length);
        break;
      }
      const next = rest.length > MAX_PRELUDE_BYTES ? undefined : await chunks.read();
      if (!next || next.done) {
        await chunks.cancel();
        return withId(BAD_GATEWAY, id);
      }
      rest = Buffer.concat([rest, next.value.data]);
    }
  }
  if (res === BAD_GATEWAY) {
    await chunks.cancel();
    return withId(res, id);
  }
  const stream = new ReadableStream<Uint8Array>({
    start: (controller) => {
      if (rest.length) controller.enqueue(new Uint8Array(rest));
    },
    pull: async (controller) => {
      const next = await chunks.read();
      if (next.done) controller.close();
      else if (next.value.data.length) controller.enqueue(new Uint8Array(next.value.data));
    },
    cancel: () => chunks.cancel(),
  });
  return withId({ ...res, stream }, id);
}

function withId(res: UrlResponse, id: [string, string]): UrlResponse {
  return { ...res, headers: [...res.headers, id] };
}

/** The prelude as a response head: a statusCode (default 200), headers and cookies, checked as a buffered response's. */
function preludeResponse(text: Buffer): UrlResponse {
  let prelude: unknown;
  try {
    prelude = JSON.parse(text.toString('utf8'));
  } catch {
    return BAD_GATEWAY;
  }
  if (!prelude || typeof prelude !== 'object' || Array.isArray(prelude)) return BAD_GATEWAY;
  const head = { statusCode: 200, ...(prelude as Record<string, unknown>), body: undefined, isBase64Encoded: undefined };
  return urlResponse(head, '');
}

/**
 * A record that is no handler's answer, as a URL's response: Kiln's own failures (`Kiln.<code>`)
 * are 429 when throttled, else 500; a handler's failure is a 502. Undefined for a success.
 */
export function failedUrlResponse(out: Invocation): UrlResponse | undefined {
  const r = out.record;
  const id: [string, string] = ['x-amzn-requestid', out.id];
  if (!r) return withId(BAD_GATEWAY, id);
  if (r.error?.errorType.startsWith('Kiln.')) {
    const code = r.error.errorType.slice(5);
    const json = (status: number, text: string): UrlResponse => ({ status, headers: [['content-type', 'application/json'], id], body: Buffer.from(JSON.stringify({ Message: text })) });
    return code === 'NoCapacity' || code === 'TooManyRequests' ? json(429, 'Rate Exceeded.') : json(500, 'Internal Server Error');
  }
  if (r.status !== 'succeeded') return withId(BAD_GATEWAY, id);
  return undefined;
}

/** An invocation that ended before its first byte: a failure as failedUrlResponse, else an empty 200. */
function unstreamed(out: Invocation): UrlResponse {
  return failedUrlResponse(out) ?? { status: 200, headers: [['content-type', 'application/octet-stream'], ['x-amzn-requestid', out.id]], body: Buffer.alloc(0) };
}
