import type { LogSink } from '../sandbox/sandbox.js';

/** Keeps the first `capBytes` of an invocation's output and says whether more was dropped. */
export class LogBuffer implements LogSink {
  private parts: string[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly capBytes: number) {}

  write(_stream: 'stdout' | 'stderr', data: string): void {
    if (this.size >= this.capBytes) {
      this.truncated = true;
      return;
    }
    const room = this.capBytes - this.size;
    const piece = data.length > room ? data.slice(0, room) : data;
    if (piece.length < data.length) this.truncated = true;
    this.parts.push(piece);
    this.size += piece.length;
  }

  line(text: string): void {
    this.parts.push(text + '\n');
    this.size += text.length + 1;
  }

  text(): string {
    return this.parts.join('');
  }
}

/** Lambda's REPORT line, so log tooling written for AWS parses Kiln's logs too. */
export function reportLine(r: { requestId: string; durationMs: number; memoryMB: number; maxMemoryMB: number; initMs?: number }): string {
  const init = r.initMs !== undefined ? `\tInit Duration: ${r.initMs.toFixed(2)} ms` : '';
  return (
    `REPORT RequestId: ${r.requestId}\tDuration: ${r.durationMs.toFixed(2)} ms\tBilled Duration: ${Math.max(1, Math.ceil(r.durationMs))} ms` +
    `\tMemory Size: ${r.memoryMB} MB\tMax Memory Used: ${r.maxMemoryMB} MB${init}`
  );
}
