import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 }, resources: { memoryMB: 128, diskMB: 64, maxProcesses: 64 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const run = (code: string, extra: Record<string, unknown> = {}) => k.call('POST', '/api/v1/executions', { code, language: 'nodejs', event: {}, ...extra });
const healthy = async () => expect((await run('exports.handler = async () => "ok"')).body.result).toBe('ok');

describe('hostile handlers are contained and the platform keeps serving', () => {
  it('a handler that exits the runtime fails with Runtime.ExitError', async () => {
    const res = await run('exports.handler = async () => { process.exit(3); }');
    expect(res.body.status).toBe('failed');
    expect(res.body.error.errorType).toBe('Runtime.ExitError');
    expect(res.body.error.errorMessage).toMatch(/exit status 3/);
    await healthy();
  });

  it('a fork bomb hits the process limit instead of the host', async () => {
    const res = await run(
      `const { spawn } = require('child_process');
       exports.handler = async () => {
         let ok = 0, failed = 0;
         for (let i = 0; i < 500; i++) {
           try { const c = spawn('/bin/sleep', ['5']); c.on('error', () => failed++); ok++; } catch { failed++; }
         }
         await new Promise((r) => setTimeout(r, 300));
         return { ok, failed };
       };`,
      { timeoutMs: 5000 },
    );
    // Either the spawns fail with EAGAIN (limit reached) or the runner itself dies trying.
    if (res.body.status === 'succeeded') expect(res.body.result.failed).toBeGreaterThan(0);
    else expect(['failed', 'timeout']).toContain(res.body.status);
    await healthy();
  });

  it('filling /tmp stops at its size limit with ENOSPC', async () => {
    const res = await run(
      `const fs = require('fs');
       exports.handler = async () => {
         const chunk = Buffer.alloc(1024 * 1024, 1);
         let written = 0;
         try { const fd = fs.openSync('/tmp/fill', 'w'); for (;;) { fs.writeSync(fd, chunk); written++; } } catch (err) { return { code: err.code, written }; }
       };`,
      { timeoutMs: 10000 },
    );
    expect(res.body.status).toBe('succeeded');
    expect(res.body.result.code).toBe('ENOSPC');
    expect(res.body.result.written).toBeLessThan(64);
    await healthy();
  });

  it('a file in /workspace cannot grow past the file size limit', async () => {
    const res = await run(
      `const fs = require('fs');
       exports.handler = async () => {
         const chunk = Buffer.alloc(1024 * 1024, 1);
         let written = 0;
         try { const fd = fs.openSync('/workspace/big', 'w'); for (let i = 0; i < 200; i++) { fs.writeSync(fd, chunk); written++; } return { written }; } catch (err) { return { code: err.code, written }; }
       };`,
      { timeoutMs: 10000 },
    );
    if (res.body.status === 'succeeded') {
      // The workspace's own filesystem (diskMB, less its metadata) fills just before RLIMIT_FSIZE
      // (also diskMB) is reached; where workspaces have no hard size, RLIMIT_FSIZE stops it.
      expect(['ENOSPC', 'EFBIG']).toContain(res.body.result.code);
      expect(res.body.result.written).toBeLessThanOrEqual(64);
    } else {
      // SIGXFSZ killed the runtime: also contained.
      expect(res.body.error.errorType).toBe('Runtime.ExitError');
    }
    await healthy();
  });

  it('printing megabytes truncates the logs instead of buffering them all', async () => {
    const res = await run(`exports.handler = async () => { const line = 'x'.repeat(1000); for (let i = 0; i < 20000; i++) console.log(line); return 'done'; }`, { timeoutMs: 20000 });
    expect(res.body.status).toBe('succeeded');
    expect(res.body.result).toBe('done');
    expect(res.body.logsTruncated).toBe(true);
    expect(res.body.logs.length).toBeLessThan(1.2 * 1024 * 1024);
    await healthy();
  });

  it('a handler that allocates past memorySize is killed with a memory error', async () => {
    const res = await run(`const keep = []; exports.handler = async () => { for (;;) { keep.push(Buffer.alloc(8 * 1024 * 1024, 1)); await new Promise((r) => setTimeout(r, 5)); } };`, { timeoutMs: 20000 });
    expect(res.body.status).toBe('failed');
    expect(res.body.error.errorType).toMatch(/Runtime\.(OutOfMemory|ExitError)/);
    await healthy();
  });

  it('a handler that hangs (pending promise, live timer) times out and the next call is served', async () => {
    // A pending promise alone returns null once the event loop is empty, as on AWS; a live timer keeps it hanging.
    const res = await run('exports.handler = () => new Promise(() => { setInterval(() => {}, 1000); })', { timeoutMs: 300 });
    expect(res.body.status).toBe('timeout');
    await healthy();
  });
});
