import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endOf, errorOf, mainText, pngSize, runCode, stdoutOf, type CodeEvent } from '../support/code.js';
import { startTestKiln, type TestKiln } from '../support/kiln.js';
import { until } from '../support/faults.js';
import { waitFor } from '../support/wait.js';

/**
 * Code contexts over REST against a real Kiln: Jupyter (ipykernel) Python and Kiln's own
 * JavaScript kernel in a code-interpreter session. Tenants alpha and beta hold full keys.
 */
const ALPHA = 'code-alpha-key-0123456789abcdef0123';
const BETA = 'code-beta-key-0123456789abcdef01234';
const as = (key: string) => ({ authorization: `Bearer ${key}` });

let k: TestKiln;
let session = '';

const api = (method: string, path: string, body?: unknown, key = ALPHA) => k.call(method, path, body, as(key));
const run = (body: Record<string, unknown>, opts: Parameters<typeof runCode>[3] = {}) => runCode(k.url, session, body, { headers: as(ALPHA), ...opts });

async function newContext(language: string, cwd?: string): Promise<string> {
  const res = await api('POST', `/api/v1/sessions/${session}/contexts`, { language, ...(cwd ? { cwd } : {}) });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 0 } }, python: null, shell: null, provided: null, 'code-interpreter': { pool: { minIdle: 1 } } },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}` },
  });
  const s = await api('POST', '/api/v1/sessions', { template: 'code-interpreter', timeoutMs: 600_000 });
  expect(s.status, JSON.stringify(s.body)).toBe(201);
  session = s.body.id as string;
}, 120_000);
afterAll(async () => {
  if (session) await api('DELETE', `/api/v1/sessions/${session}`).catch(() => undefined);
  await k?.stop();
});

describe('code contexts (Python)', () => {
  it('keeps state across cells in the default context and counts executions', async () => {
    const first = await run({ code: 'x = 41' });
    expect(first.status, JSON.stringify(first.body)).toBe(200);
    expect(first.events[0]).toMatchObject({ type: 'start', language: 'python' });
    const second = await run({ code: 'x + 1' });
    expect(mainText(second.events)).toBe('42');
    expect(second.events[0]?.contextId).toBe(first.events[0]?.contextId);
    expect(endOf(second.events)!.executionCount).toBe(endOf(first.events)!.executionCount + 1);
    expect(second.events.at(-1)!.type).toBe('end');
  }, 90_000);

  it('starts the Python kernel with the sandbox, and gives it the session env before the first cell', async () => {
    const fresh = await api('POST', '/api/v1/sessions', { template: 'code-interpreter', timeoutMs: 120_000, env: { KILN_GREETING: 'hello' } });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(201);
    const id = fresh.body.id as string;
    try {
      // Already there when the session is: the template's interpreter.prestart started it with the sandbox.
      const contexts = (await api('GET', `/api/v1/sessions/${id}/contexts`)).body.contexts as Array<{ id: string; language: string }>;
      expect(contexts.map((c) => c.language)).toEqual(['python']);
      const r = await runCode(k.url, id, { code: 'import os\nos.environ.get("KILN_GREETING")' }, { headers: as(ALPHA) });
      expect(r.events[0]?.contextId).toBe(contexts[0]?.id);
      expect(mainText(r.events)).toBe("'hello'");
    } finally {
      await api('DELETE', `/api/v1/sessions/${id}`);
    }
  }, 90_000);

  it('gives concurrent first runs of a new session one default context', async () => {
    const fresh = await api('POST', '/api/v1/sessions', { template: 'code-interpreter', timeoutMs: 120_000 });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(201);
    const id = fresh.body.id as string;
    try {
      const runs = await Promise.all([1, 2, 3].map((n) => runCode(k.url, id, { code: `v${n} = ${n}` }, { headers: as(ALPHA) })));
      // One ran, the others found it busy (409 ContextBusy) or ran after it: none made a context of its own.
      for (const r of runs) expect([200, 409], JSON.stringify(r.body)).toContain(r.status);
      for (const r of runs.filter((r) => r.status === 409)) expect(r.body.error.code).toBe('ContextBusy');
      expect(new Set(runs.filter((r) => r.status === 200).map((r) => r.events[0]?.contextId)).size).toBe(1);
      expect((await api('GET', `/api/v1/sessions/${id}/contexts`)).body.contexts).toHaveLength(1);
    } finally {
      await api('DELETE', `/api/v1/sessions/${id}`);
    }
  }, 90_000);

  it('streams stdout while the cell runs', async () => {
    // The cell waits for a file that the test writes only once it has read the first line:
    // without streaming, it would never see it and the cell would time out.
    const r = await run({ code: 'import os, time\nprint("waiting", flush=True)\nwhile not os.path.exists("/workspace/go"):\n    time.sleep(0.05)\nprint("done")', timeoutMs: 60_000 }, {
      onEvent: async (e) => {
        if (e.type === 'stdout' && e.text.includes('waiting')) {
          const put = await fetch(`${k.url}/api/v1/sessions/${session}/files?path=go`, { method: 'PUT', body: 'go', headers: { ...as(ALPHA), 'content-type': 'application/octet-stream' } });
          expect(put.status).toBe(200);
        }
      },
    });
    expect(stdoutOf(r.events)).toBe('waiting\ndone\n');
    expect(endOf(r.events)).toMatchObject({ timedOut: false, truncated: false });
  }, 90_000);

  it('returns a matplotlib figure as PNG without plt.show()', async () => {
    // The inline backend crops to the drawing (bbox_inches="tight") by default; without it the
    // PNG is exactly the figure's size in pixels, which is what this test decodes.
    const code = ['%config InlineBackend.print_figure_kwargs = {"bbox_inches": None}', 'import matplotlib.pyplot as plt', 'fig = plt.figure(figsize=(4, 3), dpi=100)', 'plt.plot([1, 2, 3], [1, 4, 9])', 'None'].join('\n');
    const r = await run({ code });
    const images = r.events.filter((e) => e.type === 'result' && e.data['image/png']);
    expect(images, JSON.stringify(r.events).slice(0, 2000)).toHaveLength(1);
    expect(images[0]!.isMainResult).toBe(false);
    expect(pngSize(images[0]!.data['image/png'])).toEqual({ width: 400, height: 300 });
  }, 90_000);

  it('returns a pandas DataFrame as text/html, text/plain and structured data', async () => {
    const r = await run({ code: 'import pandas as pd\npd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})' });
    const result = r.events.find((e) => e.type === 'result' && e.isMainResult);
    expect(result?.data['text/html']).toMatch(/<table[\s\S]*Oslo[\s\S]*Lima/);
    expect(result?.data['text/plain']).toMatch(/city\s+temp/);
    // And as data: pandas' table orient (schema and rows).
    expect(result?.data['application/json']).toMatchObject({ schema: { fields: expect.arrayContaining([{ name: 'city', type: 'string' }]) }, data: [{ index: 0, city: 'Oslo', temp: 3 }, { index: 1, city: 'Lima', temp: 19 }] });
  }, 90_000);

  it('reports an exception with its name, value and traceback', async () => {
    const r = await run({ code: 'def f():\n    return 1 / 0\nf()' });
    const err = errorOf(r.events);
    expect(err).toMatchObject({ name: 'ZeroDivisionError', value: 'division by zero' });
    expect(err!.traceback).toMatch(/f\(\)[\s\S]*1 \/ 0[\s\S]*ZeroDivisionError/);
    expect(err!.traceback).not.toContain('\u001b['); // no terminal colours
    expect(r.events.at(-1)!.type).toBe('end');
  }, 90_000);
});

describe('code contexts (JavaScript)', () => {
  it('runs top-level await, returns the last expression and keeps declarations across cells', async () => {
    const ctx = await newContext('javascript');
    try {
      const first = await run({ contextId: ctx, code: 'const base = await new Promise((r) => setTimeout(() => r(20), 10));\nconsole.log("base is", base);\nbase + 1' });
      expect(first.status, JSON.stringify(first.body)).toBe(200);
      expect(stdoutOf(first.events)).toBe('base is 20\n');
      expect(mainText(first.events)).toBe('21');
      // Running a cell with the same const again is what notebooks do; it must not fail.
      const again = await run({ contextId: ctx, code: 'const base = 40; ({ answer: base + 2 })' });
      expect(errorOf(again.events)).toBeUndefined();
      const result = again.events.find((e) => e.type === 'result');
      expect(result?.data['application/json']).toEqual({ answer: 42 });
      const thrown = await run({ contextId: ctx, code: 'function boom() { throw new RangeError("too far") }\nboom()' });
      expect(errorOf(thrown.events)).toMatchObject({ name: 'RangeError', value: 'too far' });
      expect(errorOf(thrown.events)!.traceback).toMatch(/boom/);
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);
});

describe('context lifecycle', () => {
  it('keeps two contexts side by side, each with its state and working directory', async () => {
    const a = await newContext('python');
    const b = await newContext('python', '/tmp');
    try {
      await run({ contextId: a, code: 'who = "a"' });
      await run({ contextId: b, code: 'who = "b"' });
      expect(mainText((await run({ contextId: a, code: 'who' })).events)).toBe("'a'");
      expect(mainText((await run({ contextId: b, code: 'import os\n(who, os.getcwd())' })).events)).toBe("('b', '/tmp')");
      const list = await api('GET', `/api/v1/sessions/${session}/contexts`);
      expect(list.body.contexts.map((c: { id: string }) => c.id)).toEqual(expect.arrayContaining([a, b]));
      const got = await api('GET', `/api/v1/sessions/${session}/contexts/${b}`);
      expect(got.body).toMatchObject({ id: b, language: 'python', cwd: '/tmp', busy: false });
    } finally {
      expect((await api('DELETE', `/api/v1/sessions/${session}/contexts/${a}`)).status).toBe(204);
      expect((await api('DELETE', `/api/v1/sessions/${session}/contexts/${b}`)).status).toBe(204);
    }
    expect((await api('GET', `/api/v1/sessions/${session}/contexts/${a}`)).status).toBe(404);
  }, 90_000);

  it('restart clears the state and keeps the id', async () => {
    const ctx = await newContext('python');
    try {
      await run({ contextId: ctx, code: 'kept = 1' });
      const restarted = await api('POST', `/api/v1/sessions/${session}/contexts/${ctx}/restart`);
      expect(restarted.status, JSON.stringify(restarted.body)).toBe(200);
      expect(restarted.body).toMatchObject({ id: ctx, executionCount: 0 });
      expect(errorOf((await run({ contextId: ctx, code: 'kept' })).events)).toMatchObject({ name: 'NameError' });
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);

  it.each([
    ['python', 'state = "kept"\nprint("looping", flush=True)\nwhile True:\n    pass', 'state', "'kept'"],
    ['javascript', 'var state = "kept";\nconsole.log("looping");\nwhile (true) {}', 'state', "'kept'"],
  ])('interrupts an endless loop in %s and keeps the context', async (language, loop, probe, expected) => {
    const ctx = await newContext(language);
    try {
      const r = await run({ contextId: ctx, code: loop }, {
        onEvent: async (e) => {
          if (e.type === 'stdout' && e.text.includes('looping')) expect((await api('POST', `/api/v1/sessions/${session}/contexts/${ctx}/interrupt`)).status).toBe(200);
        },
      });
      expect(errorOf(r.events)).toMatchObject({ name: 'KeyboardInterrupt' });
      expect(endOf(r.events)).toMatchObject({ timedOut: false, contextRestarted: false });
      expect(mainText((await run({ contextId: ctx, code: probe })).events)).toBe(expected);
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);

  it.each([
    ['restarted', 'restart'],
    ['deleted', 'delete'],
  ])('ends a running cell when its context is %s meanwhile', async (_done, action) => {
    const ctx = await newContext('python');
    try {
      const r = await run({ contextId: ctx, code: 'kept = 1\nprint("looping", flush=True)\nwhile True:\n    pass' }, {
        onEvent: async (e) => {
          if (e.type !== 'stdout') return;
          const res = action === 'restart' ? await api('POST', `/api/v1/sessions/${session}/contexts/${ctx}/restart`) : await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
          expect(res.status, JSON.stringify(res.body)).toBe(action === 'restart' ? 200 : 204);
        },
      });
      expect(errorOf(r.events)).toMatchObject({ name: 'ContextDied', value: `the context was ${action === 'restart' ? 'restarted' : 'deleted'} during the execution` });
      expect(endOf(r.events)).toMatchObject({ contextRestarted: true });
      if (action === 'restart') expect(errorOf((await run({ contextId: ctx, code: 'kept' })).events)).toMatchObject({ name: 'NameError' });
      else {
        expect((await api('GET', `/api/v1/sessions/${session}/contexts/${ctx}`)).status).toBe(404);
        // No kernel was started again for the deleted context: once its driver has finished
        // exiting (a moment after the delete answered), one driver runs per Python context.
        const counts = async (): Promise<[number, number]> => {
          const kernels = await api('GET', `/api/v1/sessions/${session}/processes`);
          const drivers = kernels.body.processes.filter((p: { running: boolean; args: string[] }) => p.running && p.args.some((a) => a.includes('python_driver.py')));
          const contexts = (await api('GET', `/api/v1/sessions/${session}/contexts`)).body.contexts.filter((c: { language: string }) => c.language === 'python');
          return [drivers.length, contexts.length];
        };
        await until('the deleted context\'s driver to exit', async () => {
          const [drivers, contexts] = await counts();
          return drivers === contexts;
        });
      }
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);

  it('interrupts the cell when the client hangs up', async () => {
    const ctx = await newContext('python');
    try {
      const hangup = new AbortController();
      await run({ contextId: ctx, code: 'print("looping", flush=True)\nwhile True:\n    pass' }, {
        signal: hangup.signal,
        onEvent: (e) => {
          if (e.type === 'stdout') hangup.abort();
        },
      });
      await waitFor('the context to be idle', async () => ((await api('GET', `/api/v1/sessions/${session}/contexts/${ctx}`)).body.busy === false ? true : undefined));
      expect(mainText((await run({ contextId: ctx, code: '1 + 1' })).events)).toBe('2');
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);

  it('times a cell out with TimeoutError, and a context that cannot stop is restarted', async () => {
    const ctx = await newContext('python');
    try {
      const interrupted = await run({ contextId: ctx, code: 'import time\nwhile True:\n    time.sleep(0.05)', timeoutMs: 500 });
      expect(errorOf(interrupted.events)).toMatchObject({ name: 'KeyboardInterrupt' });
      expect(interrupted.events.some((e) => e.type === 'error' && e.name === 'TimeoutError')).toBe(true);
      expect(endOf(interrupted.events)).toMatchObject({ timedOut: true, contextRestarted: false });
      // SIGINT is ignored here, so only killing the kernel stops it.
      const stubborn = await run({ contextId: ctx, code: 'import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass', timeoutMs: 500 });
      expect(endOf(stubborn.events)).toMatchObject({ timedOut: true, contextRestarted: true });
      expect(mainText((await run({ contextId: ctx, code: '6 * 7' })).events)).toBe('42');
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);
});

describe('hostile and bad input', () => {
  it('answers bad requests with a 4xx and a code', async () => {
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ code: '1', language: 'ruby' }, 400, 'InvalidRequest'],
      [{ language: 'python' }, 400, 'InvalidRequest'],
      [{ code: '1', contextId: 'ctx_nope' }, 404, 'ContextNotFound'],
      [{ code: '1', contextId: 'ctx_nope', language: 'python' }, 400, 'InvalidRequest'],
      [{ code: '1', timeoutMs: -5 }, 400, 'InvalidRequest'],
      [{ code: '1', extra: true }, 400, 'InvalidRequest'],
    ];
    for (const [body, status, code] of cases) {
      const r = await run(body);
      expect(r.status, JSON.stringify(body)).toBe(status);
      expect(r.body.error.code, JSON.stringify(body)).toBe(code);
    }
    expect((await api('POST', `/api/v1/sessions/${session}/contexts`, { language: 'cobol' })).body.error.code).toBe('InvalidRequest');
    expect((await api('POST', `/api/v1/sessions/${session}/contexts`, { cwd: 'relative/dir' })).body.error.code).toBe('InvalidRequest');
    expect((await api('POST', `/api/v1/sessions/${session}/contexts/ctx_nope/restart`)).status).toBe(404);
    expect((await api('POST', `/api/v1/sessions/${session}/contexts/ctx_nope/interrupt`)).status).toBe(404);
    expect((await api('DELETE', `/api/v1/sessions/${session}/contexts/ctx_nope`)).status).toBe(404);
    const missing = await runCode(k.url, 'ses_doesnotexist0000000000', { code: '1' }, { headers: as(ALPHA) });
    expect(missing.status).toBe(404);
  }, 90_000);

  it('answers a kernel that cannot start with 409 KernelStartFailed, naming why', async () => {
    const res = await api('POST', `/api/v1/sessions/${session}/contexts`, { language: 'python', cwd: '/workspace/does-not-exist' });
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error.code).toBe('KernelStartFailed');
    expect(res.body.error.message).toContain('does-not-exist');
    expect((await api('GET', `/api/v1/sessions/${session}/contexts`)).body.contexts.some((c: { cwd: string }) => c.cwd.includes('does-not-exist'))).toBe(false);
  }, 90_000);

  it('ends a run whose session is deleted under it, and keeps serving', async () => {
    const fresh = await api('POST', '/api/v1/sessions', { template: 'code-interpreter', timeoutMs: 120_000 });
    expect(fresh.status, JSON.stringify(fresh.body)).toBe(201);
    const id = fresh.body.id as string;
    const r = await runCode(k.url, id, { code: 'print("looping", flush=True)\nwhile True:\n    pass' }, {
      headers: as(ALPHA),
      onEvent: async (e) => {
        if (e.type === 'stdout') expect((await api('DELETE', `/api/v1/sessions/${id}`)).status).toBe(204);
      },
    });
    expect(r.status).toBe(200);
    expect(r.events.at(-1)?.type).toMatch(/^(end|error)$/);
    expect(mainText((await run({ code: '2 + 2' })).events)).toBe('4');
  }, 90_000);

  it('survives a kernel that dies: the context comes back empty', async () => {
    const ctx = await newContext('python');
    try {
      await run({ contextId: ctx, code: 'lost = 1' });
      const died = await run({ contextId: ctx, code: 'import os\nos._exit(3)' });
      expect(errorOf(died.events)?.name).toMatch(/KernelDied|ContextDied/);
      expect(endOf(died.events)).toMatchObject({ contextRestarted: true });
      expect(errorOf((await run({ contextId: ctx, code: 'lost' })).events)).toMatchObject({ name: 'NameError' });
      const js = await newContext('javascript');
      const exited = await run({ contextId: js, code: 'process.exit(1)' });
      expect(errorOf(exited.events)).toMatchObject({ name: 'ContextDied' });
      expect(mainText((await run({ contextId: js, code: '1 + 1' })).events)).toBe('2');
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${js}`);
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 120_000);

  it('caps huge output and says so, and a forged channel line cannot grow the executor', async () => {
    const ctx = await newContext('javascript');
    try {
      const huge = await run({ contextId: ctx, code: 'process.stdout.write("x".repeat(40 * 1024 * 1024)); "after"' });
      expect(endOf(huge.events)).toMatchObject({ truncated: true });
      const sent = huge.events.filter((e) => e.type === 'stdout').reduce((n, e) => n + e.text.length, 0);
      expect(sent).toBeLessThanOrEqual(32 * 1024 * 1024);
      expect(mainText(huge.events)).toBeUndefined(); // past the cap: dropped, as the end says
      // Raw bytes on the driver's channel (fd 1) without a newline: one 20 MB "line", dropped.
      const rawWrite = ['const fs = require("fs");', 'const buf = Buffer.alloc(20 * 1024 * 1024, 121);', 'for (let off = 0; off < buf.length; ) {', '  try { off += fs.writeSync(1, buf, off); } catch (e) { if (e.code !== "EAGAIN") throw e; }', '}', '7'];
      const raw = await run({ contextId: ctx, code: rawWrite.join('\n') });
      expect(endOf(raw.events)).toMatchObject({ truncated: true });
      expect(mainText(raw.events)).toBe('7');
      // Bytes that are not an event are shown as output, not trusted as one.
      const forged = await run({ contextId: ctx, code: 'require("fs").writeSync(1, "not json\\n"); 8' });
      expect(stdoutOf(forged.events)).toContain('not json');
      expect(mainText(forged.events)).toBe('8');
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 120_000);
});

describe('kernels stay in the sandbox', () => {
  it('runs kernels as the sandbox user, and a forged pid cannot steer interrupts to the host', async () => {
    const uid = await run({ code: 'import os\n(os.getuid(), os.path.exists("/etc/shadow"))' });
    expect(mainText(uid.events)).toBe('(1000, False)');
    // A host process the sandbox must not be able to signal.
    const victim = spawn('sleep', ['600'], { stdio: 'ignore' });
    const ctx = await newContext('javascript');
    try {
      const forge = `require("fs").writeSync(1, "\\n" + JSON.stringify({ type: "ready", interruptPid: ${victim.pid} }) + "\\n");\nconsole.log("looping");\nwhile (true) {}`;
      const r = await run({ contextId: ctx, code: forge }, {
        onEvent: async (e) => {
          if (e.type === 'stdout' && e.text.includes('looping')) expect((await api('POST', `/api/v1/sessions/${session}/contexts/${ctx}/interrupt`)).status).toBe(200);
        },
      });
      // The interrupt still reached the kernel (its pid was taken at start), and nothing else.
      expect(errorOf(r.events)).toMatchObject({ name: 'KeyboardInterrupt' });
      expect(victim.exitCode).toBeNull();
      expect(victim.signalCode).toBeNull();
      expect(process.kill(victim.pid as number, 0)).toBe(true);
    } finally {
      victim.kill('SIGKILL');
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);

  it('caps the contexts of a session (429 TooManyContexts)', async () => {
    const made: string[] = [];
    try {
      let refused: { status: number; body: any } | undefined;
      for (let i = 0; i < 9 && !refused; i++) {
        const res = await api('POST', `/api/v1/sessions/${session}/contexts`, { language: 'javascript' });
        if (res.status === 201) made.push(res.body.id as string);
        else refused = res;
      }
      expect(refused?.status).toBe(429);
      expect(refused?.body.error).toMatchObject({ code: 'TooManyContexts', data: { maxContexts: 8 } });
      expect((await api('GET', `/api/v1/sessions/${session}/contexts`)).body.contexts).toHaveLength(8);
    } finally {
      for (const id of made) await api('DELETE', `/api/v1/sessions/${session}/contexts/${id}`);
    }
  }, 120_000);
});

describe('tenancy', () => {
  it("another tenant cannot see, run in, interrupt, restart or delete a session's contexts", async () => {
    const ctx = await newContext('python');
    try {
      await run({ contextId: ctx, code: 'secret = "alpha"' });
      const base = `/api/v1/sessions/${session}/contexts`;
      const attempts: Array<[string, string]> = [
        ['GET', base],
        ['POST', base],
        ['GET', `${base}/${ctx}`],
        ['POST', `${base}/${ctx}/restart`],
        ['POST', `${base}/${ctx}/interrupt`],
        ['DELETE', `${base}/${ctx}`],
      ];
      for (const [method, path] of attempts) {
        const r = await api(method, path, method === 'POST' ? {} : undefined, BETA);
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.body.error.code, `${method} ${path}`).toBe('SessionNotFound');
      }
      const stolen = await runCode(k.url, session, { contextId: ctx, code: 'secret' }, { headers: as(BETA) });
      expect(stolen.status).toBe(404);
      expect(stolen.body.error.code).toBe('SessionNotFound');
      // Still there, untouched.
      expect(mainText((await run({ contextId: ctx, code: 'secret' })).events)).toBe("'alpha'");
    } finally {
      await api('DELETE', `/api/v1/sessions/${session}/contexts/${ctx}`);
    }
  }, 90_000);
});

describe('MCP run_code', () => {
  type Content = { type: string; text?: string; data?: string; mimeType?: string };
  type Result = { isError?: boolean; structuredContent?: any; content: Content[] };

  async function connect(key: string): Promise<Client> {
    const client = new Client({ name: 'kiln-code-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/interpreter`), { requestInit: { headers: as(key) } }));
    return client;
  }
  const call = async (client: Client, args: Record<string, unknown>) => (await client.callTool({ name: 'run_code', arguments: args })) as Result;

  it('returns a matplotlib chart as MCP image content an agent can see, and keeps state between calls', async () => {
    const client = await connect(ALPHA);
    let sandboxId = '';
    try {
      // The connection's own sandbox, from the code-interpreter template.
      const set = await call(client, { code: 'import matplotlib.pyplot as plt\nxs = [1, 2, 3, 4]' });
      expect(set.isError, JSON.stringify(set)).toBeFalsy();
      sandboxId = set.structuredContent.sandboxId as string;
      expect((await api('GET', `/api/v1/sessions/${sandboxId}`)).body.template).toBe('code-interpreter');
      const chart = await call(client, { code: '%config InlineBackend.print_figure_kwargs = {"bbox_inches": None}\nplt.figure(figsize=(5, 2), dpi=100)\nplt.bar(xs, [x * x for x in xs])\nprint("drew", len(xs))' });
      const images = chart.content.filter((c) => c.type === 'image');
      expect(images, JSON.stringify(chart.content.map((c) => ({ ...c, data: c.data?.slice(0, 20) })))).toHaveLength(1);
      expect(images[0]!.mimeType).toBe('image/png');
      expect(pngSize(images[0]!.data!)).toEqual({ width: 500, height: 200 });
      expect(chart.content[0]!.text).toContain('drew 4');
      const table = await call(client, { code: 'import pandas as pd\npd.DataFrame({"x": xs})' });
      expect(table.structuredContent.results[0]).toMatchObject({ isMainResult: true, formats: expect.arrayContaining(['text/html', 'text/plain']) });
      const failed = await call(client, { code: 'int("nope")' });
      expect(failed.structuredContent.error).toMatchObject({ name: 'ValueError' });
      expect(failed.content[0]!.text).toMatch(/ValueError/);
      const js = await call(client, { language: 'javascript', code: 'await Promise.resolve(6 * 7)' });
      expect(js.content[0]!.text).toContain('42');

      // Another tenant naming this sandbox gets what an unknown id gets.
      const beta = await connect(BETA);
      try {
        const stolen = await call(beta, { sandbox_id: sandboxId, code: 'xs' });
        expect(stolen.isError).toBe(true);
        expect(stolen.structuredContent.error.code).toBe('SessionNotFound');
      } finally {
        await beta.close();
      }
    } finally {
      await client.close();
      if (sandboxId) await api('DELETE', `/api/v1/sessions/${sandboxId}`);
    }
  }, 120_000);
});

export type { CodeEvent };
