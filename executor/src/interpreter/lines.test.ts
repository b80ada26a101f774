import { describe, expect, it } from 'vitest';
import { LineSplitter } from './lines.js';

function split(chunks: string[], max: number): { lines: string[]; overflows: number } {
  const lines: string[] = [];
  let overflows = 0;
  const s = new LineSplitter(max, (l) => lines.push(l), () => overflows++);
  for (const c of chunks) s.push(Buffer.from(c));
  return { lines, overflows };
}

describe('LineSplitter', () => {
  it('joins lines across chunks and splits several in one chunk', () => {
    expect(split(['{"a"', ':1}\n{"b":2}\n{"c"', ':3}\n'], 100)).toEqual({ lines: ['{"a":1}', '{"b":2}', '{"c":3}'], overflows: 0 });
  });

  it('drops a line past the cap, once, and keeps the next one', () => {
    expect(split(['x'.repeat(8), 'y'.repeat(8), 'z'.repeat(8), '\nok\n'], 10)).toEqual({ lines: ['ok'], overflows: 1 });
  });

  it('keeps multi-byte characters split between chunks', () => {
    const bytes = Buffer.from('é€\n');
    const lines: string[] = [];
    const s = new LineSplitter(100, (l) => lines.push(l), () => undefined);
    for (const b of bytes) s.push(Buffer.from([b]));
    expect(lines).toEqual(['é€']);
  });
});
