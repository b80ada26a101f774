/** One NDJSON event of POST /api/v1/sessions/{id}/code. */
export type CodeEvent = { type: string; [k: string]: any };

/**
 * Runs code over the REST surface and reads its NDJSON events as they arrive. `onEvent` sees
 * each one at once (a test can react to output while the cell still runs); `signal` aborts the
 * request (a client hanging up). A non-200 answer is returned as `status` and `body`.
 */
export async function runCode(
  url: string,
  sessionId: string,
  body: Record<string, unknown>,
  opts: { headers?: Record<string, string>; onEvent?: (e: CodeEvent) => void | Promise<void>; signal?: AbortSignal } = {},
): Promise<{ status: number; body?: any; events: CodeEvent[] }> {
  const res = await fetch(`${url}/api/v1/sessions/${sessionId}/code`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...opts.headers },
    body: JSON.stringify(body),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  if (res.status !== 200) return { status: res.status, body: await res.json().catch(() => undefined), events: [] };
  const events: CodeEvent[] = [];
  const decoder = new TextDecoder();
  let pending = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      pending += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (!line) continue;
        const e = JSON.parse(line) as CodeEvent;
        events.push(e);
        await opts.onEvent?.(e);
      }
    }
  } catch (err) {
    if (!opts.signal?.aborted) throw err;
  }
  return { status: 200, events };
}

/** The text/plain of the cell's value, if it had one. */
export const mainText = (events: CodeEvent[]): string | undefined => events.find((e) => e.type === 'result' && e.isMainResult)?.data['text/plain'];
export const stdoutOf = (events: CodeEvent[]): string => events.filter((e) => e.type === 'stdout').map((e) => e.text).join('');
export const errorOf = (events: CodeEvent[]): CodeEvent | undefined => events.find((e) => e.type === 'error');
export const endOf = (events: CodeEvent[]): CodeEvent | undefined => events.find((e) => e.type === 'end');

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
export function pngSize(base64: string): { width: number; height: number } {
  const png = Buffer.from(base64, 'base64');
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  if (!png.subarray(0, 8).equals(signature)) throw new Error('not a PNG: bad signature');
  if (png.subarray(12, 16).toString('ascii') !== 'IHDR') throw new Error('not a PNG: no IHDR first');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
