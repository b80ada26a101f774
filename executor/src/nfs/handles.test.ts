import { describe, expect, it } from 'vitest';
import { Nfs3Status, NfsError } from './errors.js';
import { HANDLE_LEN, HandleCodec, NFS3_FHSIZE } from './handles.js';

const statusOf = (fn: () => unknown): number => {
  try {
    fn();
  } catch (e) {
    if (e instanceof NfsError) return e.status;
    throw e;
  }
  return Nfs3Status.OK;
};

describe('file handles', () => {
  it('round-trip export, dev and ino and fit in FHSIZE3', () => {
    const c = new HandleCodec();
    const fh = c.encode('session-a', 2049n, 123456789012n);
    expect(fh.length).toBe(HANDLE_LEN);
    expect(HANDLE_LEN).toBeLessThanOrEqual(NFS3_FHSIZE);
    expect(c.decode(fh)).toEqual({ exportId: 'session-a', dev: 2049n, ino: 123456789012n });
    expect(fh.includes(Buffer.from('session-a'))).toBe(false);
  });

  it('reject any modified byte as STALE', () => {
    const c = new HandleCodec();
    const fh = c.encode('a', 1n, 2n);
    for (let i = 1; i < fh.length; i++) {
      const forged = Buffer.from(fh);
      forged[i] = forged[i]! ^ 1;
      expect(statusOf(() => c.decode(forged))).toBe(Nfs3Status.STALE);
    }
  });

  it('cannot be re-pointed at another export by splicing tags', () => {
    const c = new HandleCodec();
    const a = c.encode('a', 1n, 2n);
    const b = c.encode('b', 1n, 3n);
    const spliced = Buffer.concat([a.subarray(0, 1), b.subarray(1, 9), a.subarray(9)]);
    expect(statusOf(() => c.decode(spliced))).toBe(Nfs3Status.STALE);
  });

  it('are STALE on another server instance (restart) and after forget()', () => {
    const c1 = new HandleCodec();
    const fh = c1.encode('a', 1n, 2n);
    expect(statusOf(() => new HandleCodec().decode(fh))).toBe(Nfs3Status.STALE);
    c1.forget('a');
    expect(statusOf(() => c1.decode(fh))).toBe(Nfs3Status.STALE);
  });

  it('report malformed handles as BADHANDLE', () => {
    const c = new HandleCodec();
    expect(statusOf(() => c.decode(Buffer.alloc(3)))).toBe(Nfs3Status.BADHANDLE);
    const fh = c.encode('a', 1n, 2n);
    fh[0] = 99;
    expect(statusOf(() => c.decode(fh))).toBe(Nfs3Status.BADHANDLE);
  });
});
