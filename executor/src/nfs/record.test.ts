import { describe, expect, it } from 'vitest';
import { RecordDecoder, RecordError, frameRecord } from './record.js';
import { AcceptStat, encodeCall, errorReply, parseCall, parseReply, successReply } from './rpc.js';
import { XdrError, XdrWriter } from './xdr.js';

const fragment = (data: Buffer, last: boolean): Buffer => {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(((last ? 0x80000000 : 0) | data.length) >>> 0);
  return Buffer.concat([h, data]);
};

describe('record marking', () => {
  it('frames a message as one last fragment', () => {
    const framed = Buffer.concat(frameRecord([Buffer.from('ab'), Buffer.from('cd')]));
    expect(framed.readUInt32BE(0)).toBe(0x80000004);
    expect(framed.subarray(4).toString()).toBe('abcd');
  });

  it('joins multi-fragment records and splits several records in one chunk', () => {
    const d = new RecordDecoder();
    const stream = Buffer.concat([
      fragment(Buffer.from('hel'), false),
      fragment(Buffer.alloc(0), false),
      fragment(Buffer.from('lo'), true),
      fragment(Buffer.from('second'), true),
    ]);
    expect(d.push(stream).map((b) => b.toString())).toEqual(['hello', 'second']);
  });

  it('reassembles regardless of how the stream is chunked', () => {
    const msgs = [Buffer.from('x'.repeat(37)), Buffer.from('y'.repeat(5)), Buffer.alloc(0)];
    const stream = Buffer.concat([
      fragment(msgs[0]!.subarray(0, 20), false),
      fragment(msgs[0]!.subarray(20), true),
      fragment(msgs[1]!, true),
      fragment(msgs[2]!, true),
    ]);
    for (const size of [1, 2, 3, 5, 7, 64]) {
      const d = new RecordDecoder();
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...d.push(stream.subarray(i, i + size)));
      expect(out.map((b) => b.toString())).toEqual(msgs.map((b) => b.toString()));
    }
  });

  it('rejects a record over the cap as soon as the header announces it', () => {
    const d = new RecordDecoder(100);
    const h = Buffer.alloc(4);
    h.writeUInt32BE((0x80000000 | 101) >>> 0);
    expect(() => d.push(h)).toThrow(RecordError);
    // The cap applies to the sum of fragments too.
    const d2 = new RecordDecoder(100);
    expect(() => d2.push(Buffer.concat([fragment(Buffer.alloc(60), false), fragment(Buffer.alloc(60), true)]))).toThrow(RecordError);
  });
});

describe('RPC messages', () => {
  it('decodes a call with AUTH_UNIX credentials', () => {
    const msg = encodeCall(42, 100003, 3, 1, Buffer.from([0, 0, 0, 7]), { uid: 1000, gid: 100 });
    const p = parseCall(msg);
    if (!p.ok) throw new Error('expected ok');
    expect(p.call).toMatchObject({ xid: 42, prog: 100003, vers: 3, proc: 1, flavor: 1 });
    expect(p.call.unix).toMatchObject({ uid: 1000, gid: 100 });
    expect(p.call.args.u32()).toBe(7);
  });

  it('accepts AUTH_NONE', () => {
    const p = parseCall(encodeCall(1, 100005, 3, 0, Buffer.alloc(0), undefined));
    expect(p.ok).toBe(true);
  });

  it('denies other RPC versions and unknown auth flavors with a reply', () => {
    const bad = encodeCall(5, 100003, 3, 0, Buffer.alloc(0));
    bad.writeUInt32BE(3, 8); // rpcvers
    const p = parseCall(bad);
    expect(p.ok).toBe(false);
    if (p.ok) return;
    const rep = parseReply(Buffer.concat(p.reply));
    expect(rep).toMatchObject({ xid: 5, replyStat: 1, stat: 0 }); // MSG_DENIED, RPC_MISMATCH

    const gss = new XdrWriter().u32(6).u32(0).u32(2).u32(100003).u32(3).u32(0).u32(6).u32(0).u32(0).u32(0).toBuffer();
    const q = parseCall(gss);
    expect(q.ok).toBe(false);
    if (q.ok) return;
    const rep2 = parseReply(Buffer.concat(q.reply));
    expect(rep2).toMatchObject({ xid: 6, replyStat: 1, stat: 1 }); // AUTH_ERROR
    expect(rep2.body.u32()).toBe(1); // AUTH_BADCRED
  });

  it('throws on truncated headers and on replies posing as calls', () => {
    const msg = encodeCall(1, 100003, 3, 0, Buffer.alloc(0));
    for (let n = 0; n < 40; n++) expect(() => parseCall(msg.subarray(0, n))).toThrow(XdrError);
    expect(() => parseCall(Buffer.concat(errorReply(1, 1)))).toThrow(XdrError);
  });

  it('encodes accepted replies', () => {
    const ok = parseReply(successReply(9).u32(123).toBuffer());
    expect(ok).toMatchObject({ xid: 9, replyStat: 0, stat: AcceptStat.SUCCESS });
    expect(ok.body.u32()).toBe(123);
    expect(parseReply(Buffer.concat(errorReply(10, AcceptStat.GARBAGE_ARGS))).stat).toBe(AcceptStat.GARBAGE_ARGS);
  });
});

describe('record buffer pool', () => {
  it('reuses the assembly buffer of a recycled large record', () => {
    const body = Buffer.alloc(100_000, 5);
    const framed = Buffer.concat([fragment(body, true)]);
    const d = new RecordDecoder();
    // Split so the fragment spans chunks and must be assembled.
    const first = d.push(framed.subarray(0, 50_000)).concat(d.push(framed.subarray(50_000)));
    expect(first).toHaveLength(1);
    expect(first[0]!.equals(body)).toBe(true);
    RecordDecoder.recycle(first[0]!);
    const second = d.push(framed.subarray(0, 50_000)).concat(d.push(framed.subarray(50_000)));
    expect(second[0]!.buffer).toBe(first[0]!.buffer);
    expect(second[0]!.equals(body)).toBe(true);
    RecordDecoder.recycle(second[0]!);
    RecordDecoder.recycle(Buffer.from('not pooled')); // ignored
  });
});
