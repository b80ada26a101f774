import { NotFoundError, Sandbox, SandboxError, TimeoutError, type Context, type OutputMessage, type Result } from '@e2b/code-interpreter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pngSize } from '../support/code.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { waitFor } from '../support/wait.js';

/**
 * The official `@e2b/code-interpreter` SDK, unchanged, against a Kiln this file starts: its
 * port-49999 calls (`/execute`, `/contexts`) reach Kiln's code contexts through E2B_SANDBOX_URL.
 * Tenants alpha and beta each hold a key; alpha's sandbox lives for the file and is killed in
 * afterAll, as is every other sandbox a test makes, in `finally`.
 */
const ALPHA = 'e2b_c1c1c1c10123456789abcdef0123456789abcdef';
const BETA = 'e2b_c2c2c2c20123456789abcdef0123456789abcdef';

let k: TestKiln;
let sbx: Sandbox;
const token = (s: Sandbox): string => (s as unknown as { envdAccessToken: string }).envdAccessToken;

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null, 'code-interpreter': { pool: { minIdle: 1 } } },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}` },
  });
  process.env.E2B_API_URL = `${k.url}/e2b`;
  process.env.E2B_SANDBOX_URL = `${k.url}/e2b/sandbox`;
  process.env.E2B_API_KEY = ALPHA;
  sbx = await Sandbox.create({ template: 'code-interpreter', timeoutMs: 600_000 });
}, 120_000);
afterAll(async () => {
  if (sbx) await Sandbox.kill(sbx.sandboxId).catch(() => undefined);
  await k?.stop();
});

describe('@e2b/code-interpreter against Kiln', () => {
  it('keeps state across cells, streams stdout and stderr to the callbacks and counts executions', async () => {
    const first = await sbx.runCode('x = 1');
    expect(first.error).toBeUndefined();
    const stdout: OutputMessage[] = [];
    const stderr: OutputMessage[] = [];
    const results: Result[] = [];
    const second = await sbx.runCode('import sys\nprint("to out")\nprint("to err", file=sys.stderr)\nx + 1', {
      onStdout: (m) => void stdout.push(m),
      onStderr: (m) => void stderr.push(m),
      onResult: (r) => void results.push(r),
    });
    expect(second.text).toBe('2');
    expect(second.logs).toEqual({ stdout: ['to out\n'], stderr: ['to err\n'] });
    expect(stdout.map((m) => [m.line, m.error])).toEqual([['to out\n', false]]);
    expect(stderr.map((m) => [m.line, m.error])).toEqual([['to err\n', true]]);
    expect(results.map((r) => [r.text, r.isMainResult])).toEqual([['2', true]]);
    expect(second.executionCount).toBe((first.executionCount ?? 0) + 1);
  }, 90_000);

  it('returns a matplotlib chart as a PNG and a DataFrame as HTML', async () => {
    const chart = await sbx.runCode(['%config InlineBackend.print_figure_kwargs = {"bbox_inches": None}', 'import matplotlib.pyplot as plt', 'fig = plt.figure(figsize=(4, 3), dpi=100)', 'plt.plot([1, 2, 3], [1, 4, 9])', 'None'].join('\n'));
    const images = chart.results.filter((r) => r.png);
    expect(images, JSON.stringify(chart.toJSON()).slice(0, 2000)).toHaveLength(1);
    expect(images[0]!.isMainResult).toBe(false);
    expect(images[0]!.formats()).toContain('png');
    expect(pngSize(images[0]!.png!)).toEqual({ width: 400, height: 300 });

    const table = await sbx.runCode('import pandas as pd\npd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})');
    const main = table.results.find((r) => r.isMainResult);
    expect(main?.html).toMatch(/<table[\s\S]*Oslo[\s\S]*Lima/);
    expect(main?.text).toMatch(/city\s+temp/);
    expect(main?.formats()).toEqual(expect.arrayContaining(['html', 'json']));
  }, 90_000);

  it('reports an error with its name, value and traceback', async () => {
    const errors: unknown[] = [];
    const r = await sbx.runCode('def f():\n    return 1 / 0\nf()', { onError: (e) => void errors.push(e) });
    expect(r.error).toMatchObject({ name: 'ZeroDivisionError', value: 'division by zero' });
    expect(r.error!.traceback).toMatch(/1 \/ 0[\s\S]*ZeroDivisionError/);
    expect(errors).toHaveLength(1);
    expect(r.results).toEqual([]);
  }, 90_000);

  it('runs JavaScript by language, with state across cells', async () => {
    const a = await sbx.runCode('const base = 40; base', { language: 'js' });
    expect(a.error).toBeUndefined();
    expect(a.text).toBe('40');
    const b = await sbx.runCode('await Promise.resolve(base + 2)', { language: 'javascript' });
    expect(b.text).toBe('42');
    // Python's state is its own.
    expect((await sbx.runCode('"base" in dir()')).text).toBe('False');
  }, 90_000);

  it('creates, lists, restarts and removes contexts; two contexts keep separate state', async () => {
    const one = await sbx.createCodeContext({ language: 'python', cwd: '/home/user' });
    const two = await sbx.createCodeContext({ language: 'python' });
    try {
      expect(one).toMatchObject({ id: expect.any(String), language: 'python', cwd: '/home/user' });
      expect(two.cwd).toBe('/home/user');
      await sbx.runCode('v = "one"', { context: one });
      await sbx.runCode('v = "two"', { context: two });
      expect((await sbx.runCode('v', { context: one })).text).toBe("'one'");
      expect((await sbx.runCode('import os\nos.getcwd()', { context: one })).text).toBe("'/workspace'");
      const listed = (await sbx.listCodeContexts()).map((c: Context) => c.id);
      expect(listed).toEqual(expect.arrayContaining([one.id, two.id]));

      await sbx.restartCodeContext(one);
      const gone = await sbx.runCode('v', { context: one });
      expect(gone.error?.name).toBe('NameError');
      expect((await sbx.runCode('v', { context: two })).text).toBe("'two'");

      await sbx.removeCodeContext(two.id);
      expect((await sbx.listCodeContexts()).map((c: Context) => c.id)).not.toContain(two.id);
      await expect(sbx.runCode('v', { context: two })).rejects.toBeInstanceOf(NotFoundError);
      await expect(sbx.removeCodeContext(two.id)).rejects.toBeInstanceOf(NotFoundError);
      await expect(sbx.restartCodeContext(two.id)).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      await sbx.removeCodeContext(one).catch(() => undefined);
      await sbx.removeCodeContext(two).catch(() => undefined);
    }
  }, 120_000);

  it('refuses a bad language and per-run envs with a 400', async () => {
    await expect(sbx.runCode('1', { language: 'cobol' as 'python' })).rejects.toThrow(/400/);
    await expect(sbx.runCode('1', { envs: { A: 'b' } })).rejects.toThrow(/400/);
  }, 60_000);

  it('ends an execution past timeoutMs with TimeoutError and interrupts it, so the context serves the next cell', async () => {
    const ctx = await sbx.createCodeContext({ language: 'python' });
    try {
      await sbx.runCode('n = 7', { context: ctx });
      await expect(sbx.runCode('import time\nwhile True: time.sleep(0.05)', { context: ctx, timeoutMs: 2_000 })).rejects.toBeInstanceOf(TimeoutError);
      // The hang-up interrupted the loop: the context takes the next cell (busy only while the interrupt lands).
      const next = await waitFor(
        'the context to take a cell after the timeout',
        async () => {
          try {
            const r = await sbx.runCode('n * 6', { context: ctx, timeoutMs: 20_000 });
            // Refused as busy: a 409 when the refusal came at once, an error line when it came late.
            return r.error?.name === 'ContextBusy' ? undefined : r;
          } catch (err) {
            if (err instanceof SandboxError && /409/.test(err.message)) return undefined;
            throw err;
          }
        },
        30_000,
        250,
      );
      expect(next.text).toBe('42');
    } finally {
      await sbx.removeCodeContext(ctx).catch(() => undefined);
    }
  }, 90_000);
});

describe('access to the code interpreter', () => {
  const execute = (headers: Record<string, string>, body: unknown = { code: '1 + 1' }) =>
    fetch(`${k.url}/e2b/sandbox/execute`, { method: 'POST', headers: { 'content-type': 'application/json', 'e2b-sandbox-port': '49999', ...headers }, body: JSON.stringify(body) });

  it('refuses a wrong or missing token with 401, through the SDK and on the wire', async () => {
    const impostor = await Sandbox.connect(sbx.sandboxId);
    Object.assign(impostor, { envdAccessToken: 'wrong', trafficAccessToken: 'wrong' });
    await expect(impostor.runCode('1')).rejects.toThrow(/401/);
    await expect(impostor.listCodeContexts()).rejects.toThrow(/401/);
    await expect(impostor.createCodeContext()).rejects.toThrow(/401/);

    expect((await execute({ 'e2b-sandbox-id': sbx.sandboxId })).status).toBe(401);
    expect((await execute({ 'e2b-sandbox-id': sbx.sandboxId, 'x-api-key': ALPHA })).status).toBe(401);
    // A right token beside a wrong one does not win.
    expect((await execute({ 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': token(sbx), 'e2b-traffic-access-token': 'wrong' })).status).toBe(401);
    expect((await execute({ 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': 'wrong', 'e2b-traffic-access-token': token(sbx) })).status).toBe(401);
    // The right token under either name works.
    for (const name of ['x-access-token', 'e2b-traffic-access-token']) {
      const ok = await execute({ 'e2b-sandbox-id': sbx.sandboxId, [name]: token(sbx) });
      expect(ok.status, name).toBe(200);
      expect(await ok.text()).toContain('"type":"end_of_execution"');
    }
    // The interpreter's paths belong to port 49999 and envd's to 49983: neither answers for the other.
    const wrongPort = await execute({ 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': token(sbx), 'e2b-sandbox-port': '49983' });
    expect(wrongPort.status).toBe(502);
    const files = await fetch(`${k.url}/e2b/sandbox/files?path=/home/user/x`, { headers: { 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': token(sbx), 'e2b-sandbox-port': '49999' } });
    expect(files.status).toBe(502);
  }, 60_000);

  it('answers bad bodies with a 400 naming the field', async () => {
    const auth = { 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': token(sbx) };
    const notJson = await fetch(`${k.url}/e2b/sandbox/execute`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: '{"code":' });
    expect(notJson.status).toBe(400);
    const noCode = await execute(auth, { language: 'python' });
    expect(noCode.status).toBe(400);
    expect(((await noCode.json()) as { message: string }).message).toMatch(/code/);
    const both = await execute(auth, { code: '1', language: 'python', context_id: 'ctx_x' });
    expect(both.status).toBe(400);
    const huge = await execute(auth, { code: 'x'.repeat(3 * 1024 * 1024) });
    expect(huge.status).toBe(413);
  }, 60_000);

  it("keeps another tenant out: its sandbox cannot use, list or remove this one's contexts", async () => {
    const mine = await sbx.createCodeContext({ language: 'python' });
    const theirs = await Sandbox.create({ template: 'code-interpreter', apiKey: BETA, timeoutMs: 120_000 });
    try {
      await sbx.runCode('secret = "alpha"', { context: mine });
      await expect(Sandbox.connect(sbx.sandboxId, { apiKey: BETA })).rejects.toBeInstanceOf(NotFoundError);
      // Beta's own sandbox does not know alpha's context.
      await expect(theirs.runCode('secret', { context: mine })).rejects.toBeInstanceOf(NotFoundError);
      await expect(theirs.removeCodeContext(mine)).rejects.toBeInstanceOf(NotFoundError);
      await expect(theirs.restartCodeContext(mine)).rejects.toBeInstanceOf(NotFoundError);
      expect((await theirs.listCodeContexts()).map((c: Context) => c.id)).not.toContain(mine.id);
      // Beta's token on alpha's sandbox id: 401, as for an unknown sandbox.
      expect((await execute({ 'e2b-sandbox-id': sbx.sandboxId, 'x-access-token': token(theirs) })).status).toBe(401);
      expect((await sbx.runCode('secret', { context: mine })).text).toBe("'alpha'");
    } finally {
      await Sandbox.kill(theirs.sandboxId, { apiKey: BETA }).catch(() => undefined);
      await sbx.removeCodeContext(mine).catch(() => undefined);
    }
  }, 120_000);
});
