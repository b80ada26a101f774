import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FIXTURES_DIR, MODES, Runner, cleanupScratch, makeTask, startLoaded } from './harness.js';

const TUTORIAL = join(FIXTURES_DIR, 'provided-tutorial');
const INIT_ERROR = join(FIXTURES_DIR, 'provided-initerror');

// A bootstrap written in Node, to look at the Runtime API in detail (headers, status codes).
const API_PROBE = `#!/usr/bin/node
const http = require('http');
const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [host, port] = api.split(':');
const call = (method, path, body, headers = {}) => new Promise((resolve, reject) => {
  const r = http.request({ host, port, method, path, headers }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
  });
  r.on('error', reject);
  r.end(body);
});
(async () => {
  const early = await call('POST', '/2018-06-01/runtime/invocation/nope/response', '{}');
  for (;;) {
    const next = await call('GET', '/2018-06-01/runtime/invocation/next');
    const id = next.headers['lambda-runtime-aws-request-id'];
    const wrong = await call('POST', '/2018-06-01/runtime/invocation/wrong-id/response', '{}');
    const env = {
      api, handler: process.env._HANDLER, root: process.env.LAMBDA_TASK_ROOT, fn: process.env.AWS_LAMBDA_FUNCTION_NAME,
      mem: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, custom: process.env.MY_VAR, cwd: process.cwd(),
    };
    const posted = await call('POST', '/2018-06-01/runtime/invocation/' + id + '/response', JSON.stringify({
      early: [early.status, JSON.parse(early.body).errorType],
      wrong: [wrong.status, JSON.parse(wrong.body).errorType],
      status: next.status, headers: next.headers, event: JSON.parse(next.body), env,
    }));
    process.stderr.write('posted ' + posted.status + ' ' + posted.body + '\\n');
  }
})();
`;

afterAll(() => cleanupScratch());

for (const mode of MODES) {
  describe(`provided runner (${mode.name})`, () => {
    const runners: Runner[] = [];
    afterEach(async () => {
      await Promise.all(runners.splice(0).map((r) => r.shutdown()));
    });
    const start = async (taskDir: string, handler: string, flags?: string[]) => {
      const { runner, loaded } = await startLoaded('provided', taskDir, handler, mode.sandbox, { env: { MY_VAR: 'hello' }, flags });
      runners.push(runner);
      return { runner, loaded };
    };

    it('runs the tutorial-style bash bootstrap: state survives, logs come before the result', async () => {
      const { runner, loaded } = await start(TUTORIAL, 'function.handler');
      expect(runner.ready).toMatchObject({ type: 'ready', runtime: 'provided' });
      expect(loaded.type).toBe('loaded');
      expect(loaded.initDurationMs).toBeGreaterThan(0);
      expect(
        runner.messages
          .filter((m) => m.type === 'log' && m.id === null)
          .map((m) => m.data)
          .join(''),
      ).toContain('function.sh loaded\n');
      const deadlineMs = Date.now() + 5000;
      const one = await runner.invoke({ hello: 'world' }, { id: 'tut-1', deadlineMs });
      expect(one.result).toEqual(
        expect.objectContaining({ type: 'result', id: 'tut-1', ok: true, result: { count: 1, event: { hello: 'world' }, deadline: deadlineMs } }),
      );
      expect(one.text).toBe('handling tut-1\nsecond log line\n');
      expect(one.logs.every((l) => l.stream === 'stderr')).toBe(true);
      const two = await runner.invoke({ n: 2 }, { id: 'tut-2' });
      expect(two.result.result.count).toBe(2);
      expect(two.text).toBe('handling tut-2\nsecond log line\n');
    });

    it('reports errors posted to /error', async () => {
      const { runner } = await start(TUTORIAL, 'function.fail');
      const { result, text } = await runner.invoke({}, { id: 'fail-1' });
      expect(result).toMatchObject({ ok: false, id: 'fail-1' });
      expect(result.error).toEqual({ errorMessage: 'something went wrong', errorType: 'HandlerError', stackTrace: ['function.sh'] });
      expect(text).toBe('about to fail\n');
      // The runtime keeps going after a function error.
      expect((await runner.invoke({})).result.ok).toBe(false);
    });

    it('passes a non-JSON response body byte for byte (raw) and JSON bodies as result', async () => {
      const { runner } = await start(TUTORIAL, 'function.text');
      const { result } = await runner.invoke({});
      expect(result.ok).toBe(true);
      expect(result.result).toBeUndefined();
      const expected = Buffer.concat([Buffer.from('plain text, '), Buffer.from([0xff, 0xfe]), Buffer.from(' not json\n\tline two')]);
      expect(Buffer.from(result.raw, 'base64')).toEqual(expected);
      const pretty = await start(TUTORIAL, 'function.pretty');
      expect((await pretty.runner.invoke({})).result).toMatchObject({ ok: true, result: { pretty: true, n: [1, 2] } });
    });

    it('reports a bootstrap that exits during an invocation as Runtime.ExitError, then exits', async () => {
      const { runner } = await start(TUTORIAL, 'function.crash');
      const { result, text } = await runner.invoke({}, { id: 'crash-1' });
      expect(result.error).toEqual({
        errorType: 'Runtime.ExitError',
        errorMessage: 'RequestId: crash-1 Error: Runtime exited with error: exit status 123',
        stackTrace: [],
      });
      expect(text).toBe('crashing\n');
      expect((await runner.exit).code).not.toBe(0);
    });

    it('reports a bootstrap killed by a signal like AWS', async () => {
      const { runner } = await start(TUTORIAL, 'function.selfkill');
      const { result } = await runner.invoke({}, { id: 'kill-1' });
      expect(result.error.errorMessage).toBe('RequestId: kill-1 Error: Runtime exited with error: signal: killed');
    });

    it('accepts large bodies (Expect: 100-continue) and rejects oversized ones', async () => {
      const { runner } = await start(TUTORIAL, 'function.big');
      const { result } = await runner.invoke({});
      expect(result.result).toBe('a'.repeat(100_000));
      const huge = makeTask(
        {
          bootstrap: [
            '#!/usr/bin/node',
            "const http = require('http');",
            "const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');",
            "http.get({ host, port, path: '/2018-06-01/runtime/invocation/next' }, (res) => {",
            "  const id = res.headers['lambda-runtime-aws-request-id'];",
            '  res.resume();',
            "  const req = http.request({ host, port, method: 'POST', path: '/2018-06-01/runtime/invocation/' + id + '/response' }, (r) => {",
            "    let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => console.error('status', r.statusCode, b));",
            '  });',
            "  req.end(Buffer.alloc(7 * 1024 * 1024, 'x'));",
            '});',
            'setInterval(() => {}, 1000);',
          ].join('\n'),
        },
        { bootstrap: 0o755 },
      );
      const h = await start(huge, 'x.y');
      const res = await h.runner.invoke({}, { id: 'huge-1' });
      expect(res.result.error).toEqual({
        errorType: 'Function.ResponseSizeTooLarge',
        errorMessage: 'Response payload size exceeded maximum allowed payload size (6291556 bytes).',
        stackTrace: [],
      });
      const log = await h.runner.find((m) => m.type === 'log' && String(m.data).startsWith('status'));
      expect(log.data).toMatch(/^status 413 .*"errorType":"RequestEntityTooLarge"/);
    });

    it('passes ~6 MB bodies (raw and JSON) with a 32 MB V8 heap', async () => {
      const task = makeTask(
        {
          bootstrap: [
            '#!/usr/bin/node',
            "const http = require('http');",
            "const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(':');",
            "const next = () => http.get({ host, port, path: '/2018-06-01/runtime/invocation/next' }, (res) => {",
            "  const id = res.headers['lambda-runtime-aws-request-id'];",
            "  let ev = ''; res.on('data', (d) => (ev += d)); res.on('end', () => {",
            "    const body = JSON.parse(ev).raw ? Buffer.alloc(6 * 1024 * 1024, 0xff) : Buffer.from(JSON.stringify({ s: '\u00e9'.repeat(3000000) }));",
            "    const req = http.request({ host, port, method: 'POST', path: '/2018-06-01/runtime/invocation/' + id + '/response' }, (r) => { r.resume(); r.on('end', next); });",
            '    req.end(body);',
            '  });',
            '});',
            'next();',
          ].join('\n'),
        },
        { bootstrap: 0o755 },
      );
      const { runner } = await start(task, 'x.y', ['--max-old-space-size=32']);
      const raw = (await runner.invoke({ raw: true })).result;
      const bytes = Buffer.from(raw.raw, 'base64');
      expect(bytes.length).toBe(6 * 1024 * 1024);
      expect(bytes.every((b) => b === 0xff)).toBe(true);
      const json = (await runner.invoke({ raw: false })).result;
      expect(json.result.s).toBe('\u00e9'.repeat(3000000));
    });

    it('reports a bootstrap that exits during init as a Runtime.ExitError loadError', async () => {
      const { runner, loaded } = await start(TUTORIAL, 'missing.handler');
      expect(loaded).toEqual(
        expect.objectContaining({
          type: 'loadError',
          error: { errorType: 'Runtime.ExitError', errorMessage: 'Error: Runtime exited with error: exit status 1', stackTrace: [] },
        }),
      );
      expect(
        runner.messages
          .filter((m) => m.type === 'log')
          .map((m) => m.data)
          .join(''),
      ).toMatch(/missing\.sh: No such file or directory/);
      // The runner stays up; an invoke gets the init error with its request id.
      const { result } = await runner.invoke({}, { id: 'after-init' });
      expect(result.error.errorMessage).toBe('RequestId: after-init Error: Runtime exited with error: exit status 1');
    });

    it('reports a syntax error in the handler script (bootstrap exits during init)', async () => {
      const bootstrap = readFileSync(join(TUTORIAL, 'bootstrap'), 'utf8');
      const task = makeTask({ bootstrap, 'function.sh': 'function handler () {\n  echo "{}"\n' }, { bootstrap: 0o755 });
      const { runner, loaded } = await start(task, 'function.handler');
      expect(loaded.error).toEqual({ errorType: 'Runtime.ExitError', errorMessage: 'Error: Runtime exited with error: exit status 2', stackTrace: [] });
      expect(
        runner.messages
          .filter((m) => m.type === 'log')
          .map((m) => m.data)
          .join(''),
      ).toMatch(/function\.sh: line \d+: syntax error/);
    });

    it('reports a missing handler function (command not found) as Runtime.ExitError', async () => {
      const { runner, loaded } = await start(TUTORIAL, 'function.nope');
      expect(loaded.type).toBe('loaded');
      const { result, text } = await runner.invoke({}, { id: 'nope-1' });
      expect(result.error.errorMessage).toBe('RequestId: nope-1 Error: Runtime exited with error: exit status 127');
      expect(text).toMatch(/nope: command not found/);
    });

    it('reports /init/error as loadError', async () => {
      const { loaded, runner } = await start(INIT_ERROR, 'function.handler');
      expect(loaded.type).toBe('loadError');
      expect(loaded.error).toEqual({ errorMessage: 'handler not configured', errorType: 'Runtime.NoHandler', stackTrace: [] });
      expect(runner.messages.some((m) => m.type === 'log' && m.data === 'initializing\n')).toBe(true);
      // The bootstrap then exits: no second loadError.
      await new Promise((r) => setTimeout(r, 300));
      expect(runner.messages.filter((m) => m.type === 'loadError')).toHaveLength(1);
    });

    it('reports a missing bootstrap as Runtime.InvalidEntrypoint', async () => {
      const { loaded, runner } = await start(makeTask({ 'function.sh': '' }), 'function.handler');
      expect(loaded.error).toEqual({
        errorType: 'Runtime.InvalidEntrypoint',
        errorMessage: `Error: Couldn't find valid bootstrap(s): [${runner.taskRoot}/bootstrap /opt/bootstrap]`,
        stackTrace: [],
      });
    });

    it('runs a non-executable shell script bootstrap with /bin/sh', async () => {
      const task = makeTask(
        {
          bootstrap: [
            'H=$(mktemp)',
            'EVENT=$(curl -sS -D "$H" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")',
            'ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$H" | tr -d "[:space:]" | cut -d: -f2)',
            'echo "sh got $EVENT"',
            'curl -sS -o /dev/null "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$ID/response" -d \'"sh ok"\'',
            'sleep 30',
          ].join('\n'),
        },
        { bootstrap: 0o644 },
      );
      const { runner, loaded } = await start(task, 'x.y');
      expect(loaded.type).toBe('loaded');
      const { result, text } = await runner.invoke({ a: 1 });
      expect(result).toMatchObject({ ok: true, result: 'sh ok' });
      expect(text).toBe('sh got {"a":1}\n');
    });

    it('serves the Runtime API like AWS (headers, env, status codes)', async () => {
      const task = makeTask({ bootstrap: API_PROBE }, { bootstrap: 0o755 });
      const { runner, loaded } = await start(task, 'probe.handler');
      expect(loaded.type).toBe('loaded');
      const deadlineMs = Date.now() + 3000;
      const { result } = await runner.invoke(
        { x: [1, 2] },
        { id: 'probe-1', deadlineMs, clientContext: { custom: { a: 1 } }, identity: { cognitoIdentityId: 'cid' } },
      );
      expect(result.ok).toBe(true);
      const r = result.result;
      expect(r.early).toEqual([403, 'InvalidStateTransition']);
      expect(r.wrong).toEqual([400, 'InvalidRequestID']);
      expect(r.status).toBe(200);
      expect(r.event).toEqual({ x: [1, 2] });
      expect(r.headers['content-type']).toBe('application/json');
      expect(r.headers['lambda-runtime-aws-request-id']).toBe('probe-1');
      expect(r.headers['lambda-runtime-deadline-ms']).toBe(String(deadlineMs));
      expect(r.headers['lambda-runtime-invoked-function-arn']).toBe('arn:aws:lambda:local:000000000000:function:test-fn');
      expect(r.headers['lambda-runtime-trace-id']).toMatch(/^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/);
      expect(JSON.parse(r.headers['lambda-runtime-client-context'])).toEqual({ custom: { a: 1 } });
      expect(JSON.parse(r.headers['lambda-runtime-cognito-identity'])).toEqual({ cognitoIdentityId: 'cid' });
      expect(r.env).toEqual({
        api: mode.sandbox ? '127.0.0.1:9001' : expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        handler: 'probe.handler',
        root: runner.taskRoot,
        fn: 'test-fn',
        mem: '128',
        custom: 'hello',
        cwd: runner.taskRoot,
      });
      // Second invocation: no client context/identity headers.
      const two = (await runner.invoke({}, { id: 'probe-2' })).result.result;
      expect(two.headers['lambda-runtime-client-context']).toBeUndefined();
      expect(two.headers['lambda-runtime-cognito-identity']).toBeUndefined();
      const posted = await runner.find((m) => m.type === 'log' && String(m.data).startsWith('posted'));
      expect(posted.data).toBe('posted 202 {"status":"OK"}\n');
    });

    it('exits 0 promptly on shutdown and takes the bootstrap with it', async () => {
      const { runner } = await start(TUTORIAL, 'function.handler');
      const below = runner.descendants();
      expect(below.length).toBeGreaterThanOrEqual(2); // bash + the curl long-polling /next
      const t0 = Date.now();
      expect(await runner.shutdown()).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 100));
      const alive = below.filter((pid) => {
        try {
          process.kill(pid, 0);
          return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
        } catch {
          return false;
        }
      });
      expect(alive).toEqual([]);
    });
  });
}
