import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import { FramingError, RecordReader, recordHeader } from './framing.js';
import { RpcParseError } from './rpc.js';

const frag = (body: Buffer, last: boolean): Buffer => {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(((last ? 0x80000000 : 0) | body.length) >>> 0, 0);
  return Buffer.concat([h, body]);
};

/** An RPC call (AUTH_NONE) with the given argument bytes. */
function call(xid: number, prog: number, vers: number, proc: number, args: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(40);
  [xid, 0, 2, prog, vers, proc, 0, 0, 0, 0].forEach((w, i) => h.writeUInt32BE(w, i * 4));
  return Buffer.concat([h, args]);
}

function opaque(data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length, 0);
  return Buffer.concat([len, data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}

/** The words of a local reply after the 24-byte accepted header, and its accept_stat. */
function replyOf(d: ReturnType<typeof decide>): { stat: number; words: number[] } {
  if (d.to !== 'local') throw new Error(`expected a local reply, got ${d.to}`);
  const words: number[] = [];
  for (let at = 24; at < d.reply.length; at += 4) words.push(d.reply.readUInt32BE(at));
  return { stat: d.reply.readUInt32BE(20), words };
}

describe('gateway record framing', () => {
  it('joins fragments and splits records at any chunk boundary', () => {
    const a = Buffer.from('first-record');
    const b = Buffer.from('second, in two fragments');
    const stream = Buffer.concat([frag(a, true), frag(b.subarray(0, 7), false), frag(b.subarray(7), true)]);
    for (const step of [1, 3, 5, stream.length]) {
      const r = new RecordReader();
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += step) out.push(...r.push(stream.subarray(i, i + step)));
      expect(out.map((x) => x.toString())).toEqual([a.toString(), b.toString()]);
      expect(r.pending).toBe(0);
    }
  });

  it('refuses an oversize fragment from its header alone, and over-long fragment chains', () => {
    expect(() => new RecordReader(1024).push(Buffer.from('80100000', 'hex'))).toThrow(FramingError);
    const r = new RecordReader(16);
    expect(() => {
      for (let i = 0; i < 4; i++) r.push(frag(Buffer.alloc(8), false));
    }).toThrow(/exceeds 16 bytes/);
  });

  it('frames a record as one last fragment', () => {
    expect(recordHeader(5).toString('hex')).toBe('80000005');
    expect(new RecordReader().push(Buffer.concat([recordHeader(3), Buffer.from('abc')]))[0]?.toString()).toBe('abc');
  });
});

describe('gateway routing decisions', () => {
  it('routes MNT by the first path component and answers NOENT for paths that name no session', () => {
    const d = decide(call(7, 100005, 3, 1, opaque(Buffer.from('/ses_abc/src/lib'))));
    expect(d).toMatchObject({ to: 'session', sessionId: 'ses_abc' });
    if (d.to === 'session') expect(d.miss.readUInt32BE(24)).toBe(2);
    expect(replyOf(decide(call(7, 100005, 3, 1, opaque(Buffer.from('/../etc'))))).words).toEqual([2]);
    expect(replyOf(decide(call(7, 100005, 3, 1, opaque(Buffer.from('/'))))).words).toEqual([2]);
  });

  it('routes NFS calls by the export tag of their handle, with a STALE answer of the right shape', () => {
    const fh = Buffer.alloc(41);
    fh[0] = 1;
    Buffer.from('0102030405060708', 'hex').copy(fh, 1);
    const getattr = decide(call(9, 100003, 3, 1, opaque(fh)));
    expect(getattr).toMatchObject({ to: 'tag', tag: '0102030405060708' });
    const rename = decide(call(9, 100003, 3, 14, Buffer.concat([opaque(fh), opaque(Buffer.from('a'))])));
    // RENAME's failure arm: status, then two wcc_data of two FALSE words each.
    if (rename.to === 'tag') expect(rename.miss.subarray(24).toString('hex')).toBe('00000046' + '00000000'.repeat(4));
    // A handle of another layout is BADHANDLE without any lookup.
    expect(replyOf(decide(call(9, 100003, 3, 6, opaque(Buffer.alloc(32)))))).toEqual({ stat: 0, words: [10001, 0] });
  });

  it('answers NULL, EXPORT, unknown programs, versions and procedures itself', () => {
    expect(replyOf(decide(call(1, 100003, 3, 0)))).toEqual({ stat: 0, words: [] });
    expect(replyOf(decide(call(1, 100005, 3, 5)))).toEqual({ stat: 0, words: [0] });
    expect(replyOf(decide(call(1, 100000, 2, 3)))).toEqual({ stat: 1, words: [] });
    expect(replyOf(decide(call(1, 100003, 4, 1)))).toEqual({ stat: 2, words: [3, 3] });
    expect(replyOf(decide(call(1, 100003, 3, 22)))).toEqual({ stat: 3, words: [] });
    // A handle longer than NFS3_FHSIZE, or cut short: GARBAGE_ARGS for that xid.
    expect(replyOf(decide(call(1, 100003, 3, 1, opaque(Buffer.alloc(65)))))).toEqual({ stat: 4, words: [] });
    expect(replyOf(decide(call(1, 100003, 3, 1, Buffer.from('0000002900', 'hex'))))).toEqual({ stat: 4, words: [] });
  });

  it('throws on records that are not readable calls, so the connection is closed', () => {
    expect(() => decide(Buffer.from('garbage!'))).toThrow(RpcParseError);
    const reply = call(1, 100003, 3, 0);
    reply.writeUInt32BE(1, 4);
    expect(() => decide(reply)).toThrow(/not an RPC call/);
    const huge = call(1, 100003, 3, 0);
    huge.writeUInt32BE(100_000, 28);
    expect(() => decide(huge)).toThrow(RpcParseError);
  });
});
