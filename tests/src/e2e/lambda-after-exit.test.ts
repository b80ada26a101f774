import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CreateFunctionCommand, InvokeCommand, LambdaClient, type Runtime } from '@aws-sdk/client-lambda';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { makeZip } from '../support/zip.js';

let k: TestKiln;
let lambda: LambdaClient;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: { pool: { minIdle: 1 } }, shell: null, provided: null } });
  lambda = new LambdaClient({ endpoint: k.url, region: 'us-east-1', credentials: { accessKeyId: 'kiln', secretAccessKey: 'kiln' }, maxAttempts: 1 });
});
afterAll(async () => {
  lambda?.destroy();
  await k?.stop();
});

const decode = (p: Uint8Array | undefined) => Buffer.from(p ?? []).toString('utf8');

describe('the call right after a sandbox ends (issue 19, defect 1)', () => {
  it.each([
    ['nodejs20.x', 'index.js', `exports.handler = async (e) => { if (e.mode === 'exit') process.exit(1); if (e.mode === 'hang') await new Promise(() => setInterval(() => {}, 1000)); return { ok: e.n }; };`],
    ['python3.11', 'index.py', `import sys, time\ndef handler(e, c):\n    if e.get('mode') == 'exit':\n        sys.exit(3)\n    if e.get('mode') == 'hang':\n        time.sleep(60)\n    return {'ok': e['n']}\n`],
  ])('%s: after an exit or a timeout, the next call runs on a live sandbox and answers 200', async (runtime, file, source) => {
    const name = `after-exit-${runtime.replace(/\W/g, '')}`;
    await lambda.send(
      new CreateFunctionCommand({ FunctionName: name, Runtime: runtime as Runtime, Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Timeout: 1, Code: { ZipFile: makeZip([{ path: file, content: source }]) } }),
    );
    for (let round = 0; round < 4; round++) {
      const mode = (['exit', 'hang'] as const)[round % 2]!;
      const bad = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify({ mode })) }));
      expect(bad.FunctionError, decode(bad.Payload)).toBe('Unhandled');
      expect(JSON.parse(decode(bad.Payload)).errorType).toMatch(mode === 'exit' ? /Runtime\.ExitError/ : /TimeoutError|Sandbox\.Timedout|timeout/i);
      // At once, and a few back to back: none may land on the sandbox that just ended.
      for (let n = 0; n < 3; n++) {
        const good = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify({ n })) }));
        expect(good.StatusCode).toBe(200);
        expect(good.FunctionError, decode(good.Payload)).toBeUndefined();
        expect(JSON.parse(decode(good.Payload))).toEqual({ ok: n });
      }
    }
  }, 60_000);

  it('a runner that answers and then exits without saying so costs the next call nothing: it is placed on another sandbox', async () => {
    // The runner's "exiting" flag is a hint from untrusted code; here the handler exits after
    // its answer, so the executor parks a sandbox that is gone by the next call (SandboxLost).
    const name = 'exits-after-answer';
    const source = `exports.handler = async (e) => { if (e.mode === 'later') setTimeout(() => process.exit(0), 5); return { ok: e.n ?? null }; };`;
    await lambda.send(new CreateFunctionCommand({ FunctionName: name, Runtime: 'nodejs20.x', Role: 'arn:aws:iam::123456789012:role/x', Handler: 'index.handler', Code: { ZipFile: makeZip([{ path: 'index.js', content: source }]) } }));
    for (let round = 0; round < 3; round++) {
      const first = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify({ mode: 'later' })) }));
      expect(first.FunctionError, decode(first.Payload)).toBeUndefined();
      await new Promise((r) => setTimeout(r, 300));
      const next = await lambda.send(new InvokeCommand({ FunctionName: name, Payload: Buffer.from(JSON.stringify({ n: round })) }));
      expect(next.FunctionError, decode(next.Payload)).toBeUndefined();
      expect(JSON.parse(decode(next.Payload))).toEqual({ ok: round });
    }
  }, 60_000);
});
