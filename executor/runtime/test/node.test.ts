import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MODES, Runner, cleanupScratch, makeTask, startLoaded } from './harness.js';

const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t([^\t]+)\t(INFO|DEBUG|WARN|ERROR|TRACE|FATAL)\t([\s\S]*)\n$/;

const CJS_APP = `
let count = 0;
const loadedAt = Date.now();
console.log('init log');
exports.handler = async (event, context) => {
  count++;
  return {
    count, loadedAt, event,
    cwd: process.cwd(),
    env: {
      name: process.env.AWS_LAMBDA_FUNCTION_NAME, version: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      mem: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE, group: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      stream: process.env.AWS_LAMBDA_LOG_STREAM_NAME, root: process.env.LAMBDA_TASK_ROOT,
      handler: process.env._HANDLER, region: process.env.AWS_REGION, tz: process.env.TZ,
      custom: process.env.MY_VAR, exec: process.env.AWS_EXECUTION_ENV,
    },
    context: JSON.parse(JSON.stringify(context)),
    kiln: Object.keys(process.env).filter((k) => k.startsWith('KILN_')),
    remaining: context.getRemainingTimeInMillis(),
  };
};
exports.logs = async () => {
  console.log('log %s', 'one', { a: 1 });
  console.info('info');
  console.warn('warn');
  console.error('error', new Error('shown'));
  console.debug('debug');
  console.trace('trace');
  process.stdout.write('raw stdout\\n');
  process.stderr.write(Buffer.from('raw stderr\\n'));
  console.log('multi\\nline');
  return 'done';
};
exports.throws = async () => { const e = new TypeError('bad thing'); e.code = 'E_BAD'; throw e; };
exports.throwsSync = () => { throw new RangeError('sync'); };
exports.throwsString = async () => { throw 'just a string'; };
exports.custom = async () => { class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } } throw new MyError('mine'); };
exports.undef = async () => undefined;
exports.circular = async () => { const o = {}; o.o = o; return o; };
exports.remaining = async (event, context) => {
  const a = context.getRemainingTimeInMillis();
  await new Promise((r) => setTimeout(r, 50));
  return { a, b: context.getRemainingTimeInMillis() };
};
exports.cbWait = (event, context, callback) => {
  setTimeout(() => console.log('timer fired'), 300);
  callback(null, { waited: context.callbackWaitsForEmptyEventLoop });
};
exports.cbNoWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  setTimeout(() => console.log('timer fired'), 300);
  callback(null, { waited: context.callbackWaitsForEmptyEventLoop });
};
exports.cbError = (event, context, callback) => { callback(new Error('cb failed')); };
exports.cbStringError = (event, context, callback) => { callback('plain failure'); };
exports.succeed = (event, context) => { setTimeout(() => context.succeed({ legacy: 'succeed' }), 10); };
exports.done = (event, context) => { context.done(null, { legacy: 'done' }); };
exports.fail = (event, context) => { context.fail(new Error('legacy fail')); };
exports.syncReturn = (event) => 42;
exports.rejectLater = async () => { Promise.reject(new Error('nobody catches me')); await new Promise((r) => setTimeout(r, 100)); return 'unreachable'; };
exports.timerThrows = async () => { setTimeout(() => { throw new Error('boom in timer'); }, 10); await new Promise((r) => setTimeout(r, 200)); return 'unreachable'; };
exports.exits = async () => { process.exit(3); };
exports.nested = { deeper: { fn: async () => 'nested ok' } };
exports.notAFunction = 42;
`;

afterAll(() => cleanupScratch());

for (const mode of MODES) {
  describe(`node runner (${mode.name})`, () => {
    const runners: Runner[] = [];
    afterEach(async () => {
      await Promise.all(runners.splice(0).map((r) => r.shutdown()));
    });
    const start = async (files: Record<string, string>, handler: string) => {
      const { runner, loaded } = await startLoaded('nodejs', makeTask(files), handler, mode.sandbox, {
        env: { MY_VAR: 'hello' },
      });
      runners.push(runner);
      return { runner, loaded };
    };
    const app = (handler: string) => start({ 'index.js': CJS_APP }, handler);

    it('boots, loads and keeps module state across invocations', async () => {
      const { runner, loaded } = await app('index.handler');
      expect(runner.ready).toMatchObject({ type: 'ready', runtime: 'nodejs' });
      expect(typeof runner.ready.pid).toBe('number');
      expect(loaded.type).toBe('loaded');
      expect(loaded.initDurationMs).toBeGreaterThan(0);
      const init = runner.messages.find((m) => m.type === 'log');
      expect(init).toMatchObject({ id: null, stream: 'stdout' });
      expect(init!.data).toMatch(LOG_LINE);
      expect(LOG_LINE.exec(init!.data)!.slice(1)).toEqual(['undefined', 'INFO', 'init log']);

      const one = await runner.invoke({ n: 1 }, { id: 'first' });
      const two = await runner.invoke({ n: 2 }, { id: 'second' });
      expect(one.result).toMatchObject({ type: 'result', id: 'first', ok: true });
      expect(one.result.result.count).toBe(1);
      expect(two.result.result.count).toBe(2);
      expect(two.result.result.loadedAt).toBe(one.result.result.loadedAt);
      const r = one.result.result;
      expect(r.event).toEqual({ n: 1 });
      expect(r.cwd).toBe(runner.taskRoot);
      expect(r.env).toEqual({
        name: 'test-fn',
        version: '$LATEST',
        mem: '128',
        group: '/aws/lambda/test-fn',
        stream: '2026/11/23/[$LATEST]abcdef0123456789',
        root: runner.taskRoot,
        handler: 'index.handler',
        region: 'us-east-1',
        tz: ':UTC',
        custom: 'hello',
        exec: 'AWS_Lambda_nodejs20.x',
      });
      expect(r.context).toEqual({
        callbackWaitsForEmptyEventLoop: true,
        functionVersion: '$LATEST',
        functionName: 'test-fn',
        memoryLimitInMB: '128',
        logGroupName: '/aws/lambda/test-fn',
        logStreamName: '2026/11/23/[$LATEST]abcdef0123456789',
        invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:test-fn',
        awsRequestId: 'first',
      });
      expect(r.remaining).toBeGreaterThan(5000);
      expect(r.remaining).toBeLessThanOrEqual(10_000);
      expect(r.kiln).toEqual([]);
    });

    it('round-trips large events and results', async () => {
      const { runner } = await start({ 'index.js': 'exports.handler = async (e) => ({ len: e.s.length, echo: e });' }, 'index.handler');
      const s = 'é'.repeat(1_500_000) + '\n\u2028"';
      const { result } = await runner.invoke({ s });
      expect(result.result.len).toBe(s.length);
      expect(result.result.echo.s).toBe(s);
    });

    it('passes clientContext and identity', async () => {
      const { runner } = await start({ 'index.js': 'exports.handler = async (e, c) => ({ cc: c.clientContext, id: c.identity });' }, 'index.handler');
      const res = await runner.invoke({}, { clientContext: { custom: { a: 1 } }, identity: { cognitoIdentityId: 'x' } });
      expect(res.result.result).toEqual({ cc: { custom: { a: 1 } }, id: { cognitoIdentityId: 'x' } });
    });

    it('reports remaining time from deadlineMs', async () => {
      const { runner } = await app('index.remaining');
      const res = await runner.invoke({}, { deadlineMs: Date.now() + 2000 });
      const { a, b } = res.result.result;
      expect(a).toBeGreaterThan(1500);
      expect(a).toBeLessThanOrEqual(2000);
      expect(a - b).toBeGreaterThanOrEqual(40);
    });

    it('captures console and stdout/stderr output in order, AWS-formatted', async () => {
      const { runner } = await app('index.logs');
      const { result, logs } = await runner.invoke({}, { id: 'logs-1' });
      expect(result).toMatchObject({ ok: true, result: 'done' });
      const resultIndex = runner.messages.indexOf(result);
      for (const l of logs) expect(runner.messages.indexOf(l)).toBeLessThan(resultIndex);
      const parsed = logs.map((l) => {
        const m = LOG_LINE.exec(l.data);
        return m ? [l.stream, m[1], m[2], m[3]] : [l.stream, l.data];
      });
      expect(parsed[0]).toEqual(['stdout', 'logs-1', 'INFO', 'log one { a: 1 }']);
      expect(parsed[1]).toEqual(['stdout', 'logs-1', 'INFO', 'info']);
      expect(parsed[2]).toEqual(['stdout', 'logs-1', 'WARN', 'warn']);
      expect(parsed[3]!.slice(0, 3)).toEqual(['stdout', 'logs-1', 'ERROR']);
      expect(parsed[3]![3]).toMatch(/^error Error: shown\n {4}at /);
      expect(parsed[4]).toEqual(['stdout', 'logs-1', 'DEBUG', 'debug']);
      expect(parsed[5]).toEqual(['stdout', 'logs-1', 'TRACE', 'trace']);
      expect(parsed[6]).toEqual(['stdout', 'raw stdout\n']);
      expect(parsed[7]).toEqual(['stderr', 'raw stderr\n']);
      expect(parsed[8]).toEqual(['stdout', 'logs-1', 'INFO', 'multi\nline']);
      expect(logs).toHaveLength(9);
    });

    it('returns thrown errors like AWS', async () => {
      const { runner } = await app('index.throws');
      const { result, text } = await runner.invoke({});
      expect(result.ok).toBe(false);
      expect(result.error.errorType).toBe('TypeError');
      expect(result.error.errorMessage).toBe('bad thing');
      expect(result.error.stackTrace[0]).toBe('TypeError: bad thing');
      expect(result.error.stackTrace[1]).toMatch(/^ {4}at .*index\.js:\d+:\d+\)$/);
      expect(Object.keys(result.error)).toEqual(['errorType', 'errorMessage', 'stackTrace']);
      // AWS also logs the error ("Invoke Error" line with the enumerable props).
      expect(text).toMatch(/\tERROR\tInvoke Error \t\{"errorType":"TypeError","errorMessage":"bad thing","code":"E_BAD","stack":\["TypeError: bad thing",/);
    });

    it('handles sync throws, custom error names and non-Error throws', async () => {
      const sync = (await app('index.throwsSync')).runner;
      expect((await sync.invoke({})).result.error).toMatchObject({ errorType: 'RangeError', errorMessage: 'sync' });
      const custom = (await app('index.custom')).runner;
      expect((await custom.invoke({})).result.error).toMatchObject({ errorType: 'MyError', errorMessage: 'mine' });
      const str = (await app('index.throwsString')).runner;
      expect((await str.invoke({})).result.error).toEqual({ errorType: 'string', errorMessage: 'just a string', stackTrace: [] });
    });

    it('maps undefined to null and reports unserialisable results', async () => {
      const u = (await app('index.undef')).runner;
      expect((await u.invoke({})).result).toMatchObject({ ok: true, result: null });
      const c = (await app('index.circular')).runner;
      expect((await c.invoke({})).result.error).toMatchObject({ errorType: 'Error', errorMessage: 'Unable to stringify response body' });
    });

    it('reports a syntax error as Runtime.UserCodeSyntaxError', async () => {
      const { runner, loaded } = await start({ 'index.js': 'exports.handler = async () => { return 1 }}' }, 'index.handler');
      expect(loaded.type).toBe('loadError');
      expect(loaded.error.errorType).toBe('Runtime.UserCodeSyntaxError');
      expect(loaded.error.errorMessage).toBe("SyntaxError: Unexpected token '}'");
      expect(loaded.error.stackTrace[0]).toBe("Runtime.UserCodeSyntaxError: SyntaxError: Unexpected token '}'");
      // loadError is not fatal: an invoke gets the init error back.
      const { result } = await runner.invoke({});
      expect(result.error.errorType).toBe('Runtime.UserCodeSyntaxError');
      const esm = await start({ 'index.mjs': 'export const handler = async () => { return 1 }}' }, 'index.handler');
      expect(esm.loaded.error).toMatchObject({ errorType: 'Runtime.UserCodeSyntaxError', errorMessage: "SyntaxError: Unexpected token '}'" });
    });

    it('reports a missing module as Runtime.ImportModuleError', async () => {
      const { runner, loaded } = await start({ 'other.js': '' }, 'index.handler');
      expect(loaded.type).toBe('loadError');
      expect(loaded.error.errorType).toBe('Runtime.ImportModuleError');
      expect(loaded.error.errorMessage).toMatch(/^Error: Cannot find module 'index'\nRequire stack:\n- .*runner\.cjs$/);
      const initLog = runner.messages.find((m) => m.type === 'log');
      expect(initLog!.data).toMatch(/\tundefined\tERROR\tUncaught Exception \t\{"errorType":"Runtime.ImportModuleError"/);
      // A dependency missing inside the user's module is the same error.
      const dep = await start({ 'index.js': "require('left-pad'); exports.handler = async () => 1;" }, 'index.handler');
      expect(dep.loaded.error.errorType).toBe('Runtime.ImportModuleError');
      expect(dep.loaded.error.errorMessage).toMatch(/^Error: Cannot find module 'left-pad'\nRequire stack:\n- .*index\.js/);
      // In ESM it is Node's own error, reported as is (as AWS does).
      const esm = await start({ 'index.mjs': "import 'left-pad';\nexport const handler = async () => 1;" }, 'index.handler');
      expect(esm.loaded.error.errorType).toBe('Error');
      expect(esm.loaded.error.errorMessage).toMatch(/^Cannot find package 'left-pad' imported from .*index\.mjs$/);
    });

    it('reports a missing or non-function handler as Runtime.HandlerNotFound', async () => {
      const a = await app('index.missing');
      expect(a.loaded.error).toMatchObject({ errorType: 'Runtime.HandlerNotFound', errorMessage: 'index.missing is undefined or not exported' });
      const b = await app('index.notAFunction');
      expect(b.loaded.error).toMatchObject({ errorType: 'Runtime.HandlerNotFound', errorMessage: 'index.notAFunction is not a function' });
      const c = await app('indexhandler');
      expect(c.loaded.error).toMatchObject({ errorType: 'Runtime.MalformedHandlerName', errorMessage: 'Bad handler' });
    });

    it('resolves nested handler paths and files in subdirectories', async () => {
      const a = await app('index.nested.deeper.fn');
      expect((await a.runner.invoke({})).result.result).toBe('nested ok');
      const b = await start({ 'src/app.js': "exports.handler = async () => 'from src';" }, 'src/app.handler');
      expect((await b.runner.invoke({})).result.result).toBe('from src');
    });

    it('supports callback handlers waiting for the empty event loop (default)', async () => {
      const { runner } = await app('index.cbWait');
      const t0 = Date.now();
      const { result, text } = await runner.invoke({});
      expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
      expect(result).toMatchObject({ ok: true, result: { waited: true } });
      expect(text).toContain('timer fired');
    });

    it('sends callback results immediately with callbackWaitsForEmptyEventLoop=false', async () => {
      const { runner } = await app('index.cbNoWait');
      const t0 = Date.now();
      const { result, text } = await runner.invoke({}, { id: 'nowait' });
      expect(Date.now() - t0).toBeLessThan(250);
      expect(result).toMatchObject({ ok: true, result: { waited: false } });
      expect(text).not.toContain('timer fired');
      // The pending timer still runs afterwards (between invocations: id null)...
      const late = await runner.find((m) => m.type === 'log' && m.data.includes('timer fired'));
      expect(late.id).toBeNull();
      // ...and the next invocation still works.
      expect((await runner.invoke({})).result.ok).toBe(true);
    });

    it('supports callback errors and legacy context.succeed/done/fail', async () => {
      const e = (await app('index.cbError')).runner;
      expect((await e.invoke({})).result.error).toMatchObject({ errorType: 'Error', errorMessage: 'cb failed' });
      const s = (await app('index.cbStringError')).runner;
      expect((await s.invoke({})).result.error).toEqual({ errorType: 'string', errorMessage: 'plain failure', stackTrace: [] });
      const ok = (await app('index.succeed')).runner;
      expect((await ok.invoke({})).result.result).toEqual({ legacy: 'succeed' });
      const done = (await app('index.done')).runner;
      expect((await done.invoke({})).result.result).toEqual({ legacy: 'done' });
      const fail = (await app('index.fail')).runner;
      expect((await fail.invoke({})).result.error).toMatchObject({ errorType: 'Error', errorMessage: 'legacy fail' });
    });

    it('returns null for a sync handler that neither returns a promise nor calls back (like AWS)', async () => {
      const { runner } = await app('index.syncReturn');
      expect((await runner.invoke({})).result).toMatchObject({ ok: true, result: null });
    });

    it('loads ES modules: .mjs and .js with "type": "module"', async () => {
      const mjs = await start(
        {
          'index.mjs':
            "import { hostname } from 'node:os';\nconst t = typeof hostname;\nlet n = 0;\nexport const handler = async () => ({ esm: true, t, n: ++n, meta: typeof import.meta.url });",
        },
        'index.handler',
      );
      expect(mjs.loaded.type).toBe('loaded');
      expect((await mjs.runner.invoke({})).result.result).toEqual({ esm: true, t: 'function', n: 1, meta: 'string' });
      expect((await mjs.runner.invoke({})).result.result.n).toBe(2);
      const tm = await start(
        {
          'package.json': JSON.stringify({ type: 'module' }),
          'app.js': "import { helper } from './lib/helper.js';\nexport async function handler(e) { return helper(e); }",
          'lib/helper.js': 'export const helper = (e) => ({ typeModule: true, e });',
        },
        'app.handler',
      );
      expect(tm.loaded.type).toBe('loaded');
      expect((await tm.runner.invoke({ x: 1 })).result.result).toEqual({ typeModule: true, e: { x: 1 } });
      const cjs = await start({ 'index.cjs': "exports.handler = async () => 'cjs ok';" }, 'index.handler');
      expect((await cjs.runner.invoke({})).result.result).toBe('cjs ok');
      const tla = await start(
        { 'index.mjs': "const v = await new Promise((r) => setTimeout(() => r('tla'), 20));\nexport const handler = async () => v;" },
        'index.handler',
      );
      expect((await tla.runner.invoke({})).result.result).toBe('tla');
    });

    it('ends the invocation on an unhandled rejection, then exits', async () => {
      const { runner } = await app('index.rejectLater');
      const { result, text } = await runner.invoke({});
      expect(result.ok).toBe(false);
      expect(result.error.errorType).toBe('Runtime.UnhandledPromiseRejection');
      expect(result.exiting, 'the executor must not reuse a runner that is exiting').toBe(true);
      expect(result.error.errorMessage).toBe('Error: nobody catches me');
      expect(result.error.stackTrace[0]).toBe('Runtime.UnhandledPromiseRejection: Error: nobody catches me');
      expect(text).toContain('\tERROR\tUnhandled Promise Rejection \t{"errorType":"Runtime.UnhandledPromiseRejection"');
      const exit = await runner.exit;
      expect(exit.code).toBe(128);
    });

    it('ends the invocation on an uncaught exception, then exits', async () => {
      const { runner } = await app('index.timerThrows');
      const { result } = await runner.invoke({});
      expect(result.error).toMatchObject({ errorType: 'Error', errorMessage: 'boom in timer' });
      expect(result.exiting).toBe(true);
      expect((await runner.exit).code).toBe(129);
    });

    it('reports process.exit() in a handler as Runtime.ExitError', async () => {
      const { runner } = await app('index.exits');
      const { result } = await runner.invoke({}, { id: 'exit-1' });
      expect(result.error).toEqual({
        errorType: 'Runtime.ExitError',
        errorMessage: 'RequestId: exit-1 Error: Runtime exited with error: exit status 3',
        stackTrace: [],
      });
      expect(result.exiting).toBe(true);
      expect((await runner.exit).code).toBe(3);
    });

    it('reports process.exit() during init as a Runtime.ExitError loadError', async () => {
      const { loaded, runner } = await start({ 'index.js': 'process.exit(2);' }, 'index.handler');
      expect(loaded).toMatchObject({
        type: 'loadError',
        error: { errorType: 'Runtime.ExitError', errorMessage: 'Error: Runtime exited with error: exit status 2', stackTrace: [] },
      });
      expect((await runner.exit).code).toBe(2);
    });

    it('streams a streamifyResponse handler as chunk messages before its result, and HttpResponseStream.from writes the prelude first', async () => {
      const STREAMING = `
exports.plain = awslambda.streamifyResponse(async (event, stream, context) => {
  stream.setContentType('text/plain');
  stream.write('a');
  stream.write(Buffer.from('b'));
  stream.end('c');
});
exports.http = awslambda.streamifyResponse(async (event, stream) => {
  stream = awslambda.HttpResponseStream.from(stream, { statusCode: 201 });
  stream.end('body');
});
exports.noPromise = awslambda.streamifyResponse((event, stream) => { setTimeout(() => stream.end('later'), 10); });
exports.fails = awslambda.streamifyResponse(async (event, stream) => { stream.write('x'); throw new RangeError('mid-stream'); });
exports.big = awslambda.streamifyResponse(async (event, stream) => { stream.end(Buffer.alloc(600 * 1024, 65)); });
`;
      const chunksOf = (runner: Runner, id: string) => runner.messages.filter((m) => m.type === 'chunk' && m.id === id);
      const text = (runner: Runner, id: string) => Buffer.concat(chunksOf(runner, id).map((m) => Buffer.from(m.data as string, 'base64'))).toString('latin1');
      const plain = (await start({ 'index.js': STREAMING }, 'index.plain')).runner;
      const { result } = await plain.invoke({}, { id: 's-1' });
      expect(result).toMatchObject({ ok: true, streamed: true, contentType: 'text/plain' });
      expect(chunksOf(plain, 's-1').map((m) => [Buffer.from(m.data as string, 'base64').toString(), m.contentType])).toEqual([['a', 'text/plain'], ['b', undefined], ['c', undefined]]);
      expect(plain.messages.indexOf(chunksOf(plain, 's-1')[2]!)).toBeLessThan(plain.messages.indexOf(result));
      const http = (await start({ 'index.js': STREAMING }, 'index.http')).runner;
      expect((await http.invoke({}, { id: 's-2' })).result).toMatchObject({ ok: true, contentType: 'application/vnd.awslambda.http-integration-response' });
      expect(text(http, 's-2')).toBe(`{"statusCode":201}${'\0'.repeat(8)}body`);
      const later = (await start({ 'index.js': STREAMING }, 'index.noPromise')).runner;
      expect((await later.invoke({}, { id: 's-3' })).result).toMatchObject({ ok: true, streamed: true });
      expect(text(later, 's-3')).toBe('later');
      const fails = (await start({ 'index.js': STREAMING }, 'index.fails')).runner;
      expect((await fails.invoke({}, { id: 's-4' })).result).toMatchObject({ ok: false, error: { errorType: 'RangeError', errorMessage: 'mid-stream' } });
      expect(text(fails, 's-4')).toBe('x');
      const big = (await start({ 'index.js': STREAMING }, 'index.big')).runner;
      await big.invoke({}, { id: 's-5' });
      expect(chunksOf(big, 's-5').map((m) => Buffer.from(m.data as string, 'base64').length)).toEqual([256 * 1024, 256 * 1024, 88 * 1024]);
    });

    it('exits 0 promptly on shutdown', async () => {
      const { runner } = await app('index.handler');
      const t0 = Date.now();
      expect(await runner.shutdown()).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(1000);
    });
  });
}
