/** One Server-Sent Event: its name and its data parsed as JSON. */
export interface SseEvent {
  event: string;
  data: unknown;
}

/**
 * The events of a text/event-stream body, as Kiln writes them (`event:` and one `data:` line of
 * JSON per event). Cancelling the iteration cancels the body, which ends the request.
 */
export async function* sseEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) yield { event, data: JSON.parse(data.join('\n')) as unknown };
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined); // already closed or errored: nothing to release
  }
}
