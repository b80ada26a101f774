import { describe, expect, it } from 'vitest';
import { XdrError, XdrReader, XdrWriter } from './xdr.js';

describe('XDR', () => {
  it('round-trips integers, hypers, bools, strings and opaques with 4-byte padding', () => {
    const w = new XdrWriter(8)
      .u32(0xffffffff)
      .i32(-2)
      .u64(0x1234567890abcdefn)
      .bool(true)
      .string('héllo')
      .opaque(Buffer.from([1, 2, 3]))
      .fixed(Buffer.from([9, 9, 9, 9, 9]));
    const buf = w.toBuffer();
    // 4 + 4 + 8 + 4 + (4 + 8) + (4 + 4) + 8
    expect(buf.length).toBe(48);
    expect(buf.length % 4).toBe(0);
    const r = new XdrReader(buf);
    expect(r.u32()).toBe(0xffffffff);
    expect(r.i32()).toBe(-2);
    expect(r.u64()).toBe(0x1234567890abcdefn);
    expect(r.bool()).toBe(true);
    expect(r.string(100)).toBe('héllo');
    expect([...r.opaque(10)]).toEqual([1, 2, 3]);
    expect([...r.fixed(5)]).toEqual([9, 9, 9, 9, 9]);
    expect(r.remaining).toBe(0);
  });

  it('pads with zero bytes', () => {
    const buf = new XdrWriter().opaque(Buffer.from('a')).toBuffer();
    expect([...buf]).toEqual([0, 0, 0, 1, 97, 0, 0, 0]);
  });

  it('throws XdrError instead of reading past the end', () => {
    expect(() => new XdrReader(Buffer.alloc(3)).u32()).toThrow(XdrError);
    expect(() => new XdrReader(Buffer.alloc(4)).u64()).toThrow(XdrError);
    // Declared opaque length larger than what follows.
    const truncated = new XdrWriter().u32(10).raw(Buffer.alloc(4)).toBuffer();
    expect(() => new XdrReader(truncated).opaque(100)).toThrow(XdrError);
    // Opaque body present but padding missing.
    const noPad = new XdrWriter()
      .u32(3)
      .raw(Buffer.from([1, 2, 3]))
      .toBuffer();
    expect(() => new XdrReader(noPad).opaque(100)).toThrow(XdrError);
  });

  it('enforces protocol bounds on variable-length data', () => {
    const buf = new XdrWriter().opaque(Buffer.alloc(65)).toBuffer();
    expect(() => new XdrReader(buf).opaque(64)).toThrow(/exceeds/);
    expect(() => new XdrReader(new XdrWriter().u32(2).toBuffer()).bool()).toThrow(XdrError);
  });

  it('references large opaques without copying and keeps the order of chunks', () => {
    const big = Buffer.alloc(10_001, 7);
    const w = new XdrWriter().u32(1).opaqueRef(big).u32(2);
    const chunks = w.chunksOut();
    expect(chunks.some((c) => c === big)).toBe(true);
    const r = new XdrReader(Buffer.concat(chunks));
    expect(r.u32()).toBe(1);
    expect(r.opaque(1 << 20).equals(big)).toBe(true);
    expect(r.u32()).toBe(2);
    expect(r.remaining).toBe(0);
  });

  it('grows past its initial buffer', () => {
    const w = new XdrWriter(4);
    for (let i = 0; i < 1000; i++) w.u32(i);
    const r = new XdrReader(w.toBuffer());
    for (let i = 0; i < 1000; i++) expect(r.u32()).toBe(i);
  });
});
