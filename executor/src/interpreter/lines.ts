/**
 * Splits a byte stream into lines, keeping at most `maxLineBytes` of a line in memory: the
 * rest of an over-long line is dropped and the line is reported as cut (`onOverflow`), so a
 * sandbox that writes without newlines cannot grow the executor's memory.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private overflowed = false;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      this.take(chunk.subarray(start, nl));
      const line = this.overflowed ? undefined : Buffer.concat(this.parts, this.size).toString('utf8');
      this.parts = [];
      this.size = 0;
      this.overflowed = false;
      if (line !== undefined) this.onLine(line);
      start = nl + 1;
    }
    this.take(chunk.subarray(start));
  }

  private take(part: Buffer): void {
    if (this.overflowed || part.length === 0) return;
    if (this.size + part.length > this.maxLineBytes) {
      this.overflowed = true;
      this.parts = [];
      this.size = 0;
      this.onOverflow();
      return;
    }
    this.parts.push(Buffer.from(part));
    this.size += part.length;
  }
}
