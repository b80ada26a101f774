import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

// The runner channel (fd 3) is writable by the handler: it shares the runner's process. What it
// writes there must not answer for another invocation, and no amount of it may end the executor.

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const run = (code: string, event: unknown = {}) => k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event, timeoutMs: 30_000 });

describe('the runner channel is untrusted input', () => {
  it('a forged result on fd 3 answers neither this invocation nor the next one of the instance', async () => {
    const code = `const fs = require('fs');
      const forge = () => fs.writeSync(3, JSON.stringify({ type: 'result', ok: true, result: 'forged' }) + '\\n');
      exports.handler = async (e) => {
        forge();
        fs.writeSync(3, JSON.stringify({ type: 'result', id: 'not-this-one', ok: true, result: 'forged' }) + '\\n');
        if (e.later) setTimeout(forge, 10); // lands between invocations
        await new Promise((r) => setTimeout(r, 20));
        return 'real-' + e.n;
      };`;
    for (let n = 0; n < 4; n++) {
      const res = await run(code, { n, later: true });
      expect(res.body.status, JSON.stringify(res.body)).toBe('succeeded');
      expect(res.body.result).toBe(`real-${n}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  });

  it('an endless line on fd 3 kills that sandbox alone, with a clear error, and the executor keeps serving', async () => {
    // fd 3 is non-blocking: a persistent writer waits out EAGAIN and goes on.
    const res = await run(`const fs = require('fs');
      exports.handler = async () => {
        const chunk = Buffer.alloc(1024 * 1024, 120);
        // Counts what was really written (writes to a full socket are partial), up to 20× the limit.
        for (let sent = 0; sent < 256 * 1024 * 1024; ) {
          try { sent += fs.writeSync(3, chunk); } catch (e) { if (e.code !== 'EAGAIN') throw e; await new Promise((r) => setImmediate(r)); }
        }
        return 'unreachable';
      };`);
    expect(res.body.status).toBe('failed');
    expect(res.body.error.errorType, JSON.stringify(res.body.error).slice(0, 600)).toBe('Runtime.ExitError');
    expect(res.body.error.errorMessage).toMatch(/longer than \d+ characters/);
    const next = await run('exports.handler = async () => "ok"');
    expect(next.body.result).toBe('ok');
  });
});
