import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { log, logContext, setLogLevel, setLogSink, withLogContext, withoutLogContext } from './log.js';

let lines: Array<Record<string, unknown>>;
let restore: (line: string) => void;
beforeEach(() => {
  lines = [];
  restore = setLogSink((line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  setLogLevel('debug');
});
afterEach(() => {
  setLogSink(restore);
  setLogLevel('info');
});

describe('log', () => {
  it('writes one JSON line with time, level, message and fields, and nothing below the level', () => {
    setLogLevel('warn');
    log('info', 'dropped');
    log('warn', 'kept', { sessionId: 's1' });
    expect(lines).toEqual([{ t: expect.any(String), level: 'warn', msg: 'kept', sessionId: 's1' }]);
  });

  it('names the tenant and key id of the request on every line logged while it is handled, also after awaits', async () => {
    await withLogContext({ tenant: 'acme', keyId: 'k1' }, async () => {
      log('info', 'before');
      await new Promise((r) => setTimeout(r, 1));
      log('info', 'after', { path: '/x' });
      expect(logContext()).toEqual({ tenant: 'acme', keyId: 'k1' });
    });
    log('info', 'outside');
    expect(lines.map((l) => [l.msg, l.tenant, l.keyId])).toEqual([
      ['before', 'acme', 'k1'],
      ['after', 'acme', 'k1'],
      ['outside', undefined, undefined],
    ]);
    expect(lines[1]?.path).toBe('/x');
  });

  it('keeps concurrent requests apart', async () => {
    const one = (tenant: string, ms: number) =>
      withLogContext({ tenant, keyId: `key-${tenant}` }, async () => {
        await new Promise((r) => setTimeout(r, ms));
        log('info', tenant);
      });
    await Promise.all([one('a', 5), one('b', 1)]);
    expect(lines.map((l) => [l.msg, l.tenant, l.keyId])).toEqual([
      ['b', 'b', 'key-b'],
      ['a', 'a', 'key-a'],
    ]);
  });

  it('lets a line name another tenant explicitly, and a job context carry only its tenant', () => {
    withLogContext({ tenant: 'acme', keyId: 'admin-key' }, () => log('info', 'deleted', { tenant: 'other' }));
    withLogContext({ tenant: 'acme' }, () => log('info', 'job'));
    expect(lines[0]).toMatchObject({ tenant: 'other', keyId: 'admin-key' });
    expect(lines[1]).toEqual({ t: expect.any(String), level: 'info', msg: 'job', tenant: 'acme' });
  });

  it('leaves out the context for what a request makes but everyone shares (a timer, a connection)', async () => {
    const timer = (msg: string) => new Promise<void>((resolve) => setTimeout(() => resolve(log('info', msg)), 1));
    await withLogContext({ tenant: 'first', keyId: 'k-first' }, () => Promise.all([withoutLogContext(() => timer('shared timer')), timer('own timer')]));
    const byMsg = Object.fromEntries(lines.map((l) => [l.msg, l.tenant]));
    expect(byMsg).toEqual({ 'shared timer': undefined, 'own timer': 'first' });
  });

  it('by default gathers the lines of one event-loop turn into one stderr write, in order, after the turn', async () => {
    setLogSink(restore); // the default sink, as the control plane runs
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      log('info', 'one');
      log('info', 'two', { n: 2 });
      expect(write).not.toHaveBeenCalled();
      await new Promise((r) => setImmediate(r));
      expect(write).toHaveBeenCalledTimes(1);
      const written = String(write.mock.calls[0]?.[0]).trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(written.map((l) => l.msg)).toEqual(['one', 'two']);
    } finally {
      write.mockRestore();
    }
  });
});
