import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MODES, Runner, cleanupScratch, makeTask, startLoaded } from './harness.js';

const APP = `
import json
import logging
import os
import sys
import time

logger = logging.getLogger()
logger.setLevel(logging.INFO)
COUNT = 0
LOADED_AT = time.time()
print("init print")


def handler(event, context):
    global COUNT
    COUNT += 1
    return {
        "count": COUNT,
        "loaded_at": LOADED_AT,
        "event": event,
        "cwd": os.getcwd(),
        "path0": sys.path[0],
        "env": {k: os.environ.get(k) for k in [
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "LAMBDA_TASK_ROOT", "_HANDLER",
            "AWS_REGION", "TZ", "MY_VAR", "AWS_EXECUTION_ENV"]},
        "context": {
            "aws_request_id": context.aws_request_id,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "invoked_function_arn": context.invoked_function_arn,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "client_context": context.client_context and context.client_context.custom,
            "identity": context.identity.cognito_identity_id,
        },
        "remaining": context.get_remaining_time_in_millis(),
        "kiln": [k for k in os.environ if k.startswith("KILN_")],
    }


def logs(event, context):
    print("hello", "world", {"a": 1})
    print("to stderr", file=sys.stderr)
    sys.stdout.write("partial ")
    sys.stdout.write("line\\n")
    logger.info("info %s", "arg")
    logger.warning("warned")
    logger.debug("not shown: root level is INFO")
    logging.getLogger("child").error("from child")
    sys.stdout.buffer.write(b"bytes out\\n")
    print("tail without newline", end="")
    return "done"


def boom(event, context):
    raise ValueError("x")


def nested_boom(event, context):
    def inner():
        return {}["missing"]
    return inner()


def marshal(event, context):
    import datetime
    return {"when": datetime.datetime(2020, 1, 1)}


def returns_none(event, context):
    return None


def returns_bytes(event, context):
    return b"\\xff\\xfe not json"


def decimals(event, context):
    import decimal
    return {"i": decimal.Decimal("3"), "f": decimal.Decimal("1.5")}


def remaining(event, context):
    a = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    return {"a": a, "b": context.get_remaining_time_in_millis()}


def exits(event, context):
    sys.exit(4)


def nan(event, context):
    return {"v": float("nan")}


def echo(event, context):
    return {"len": len(event["s"]), "echo": event}
`;

const BOOM_LINE = APP.split('\n').findIndex((l) => l.includes('raise ValueError')) + 1;

afterAll(() => cleanupScratch());

for (const mode of MODES) {
  describe(`python runner (${mode.name})`, () => {
    const runners: Runner[] = [];
    afterEach(async () => {
      await Promise.all(runners.splice(0).map((r) => r.shutdown()));
    });
    const start = async (files: Record<string, string>, handler: string, flags?: string[]) => {
      const { runner, loaded } = await startLoaded('python', makeTask(files), handler, mode.sandbox, {
        env: { MY_VAR: 'hello' },
        flags,
      });
      runners.push(runner);
      return { runner, loaded };
    };
    const app = (handler: string) => start({ 'index.py': APP }, handler);

    it('boots, loads and keeps module state across invocations', async () => {
      const { runner, loaded } = await app('index.handler');
      expect(runner.ready).toMatchObject({ type: 'ready', runtime: 'python' });
      expect(loaded).toMatchObject({ type: 'loaded' });
      expect(loaded.initDurationMs).toBeGreaterThan(0);
      expect(runner.messages.find((m) => m.type === 'log')).toMatchObject({ id: null, stream: 'stdout', data: 'init print\n' });
      const one = await runner.invoke({ n: 1 }, { id: 'first', clientContext: { custom: { k: 'v' } }, identity: { cognitoIdentityId: 'cid' } });
      const two = await runner.invoke({ n: 2 }, { id: 'second' });
      expect(one.result).toMatchObject({ type: 'result', id: 'first', ok: true });
      const r = one.result.result;
      expect(r.count).toBe(1);
      expect(two.result.result.count).toBe(2);
      expect(two.result.result.loaded_at).toBe(r.loaded_at);
      expect(r.event).toEqual({ n: 1 });
      expect(r.cwd).toBe(runner.taskRoot);
      expect(r.path0).toBe(runner.taskRoot);
      expect(r.env).toEqual({
        AWS_LAMBDA_FUNCTION_NAME: 'test-fn',
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '128',
        AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/test-fn',
        AWS_LAMBDA_LOG_STREAM_NAME: '2026/11/23/[$LATEST]abcdef0123456789',
        LAMBDA_TASK_ROOT: runner.taskRoot,
        _HANDLER: 'index.handler',
        AWS_REGION: 'us-east-1',
        TZ: ':UTC',
        MY_VAR: 'hello',
        AWS_EXECUTION_ENV: 'AWS_Lambda_python3.11',
      });
      expect(r.context).toEqual({
        aws_request_id: 'first',
        function_name: 'test-fn',
        function_version: '$LATEST',
        memory_limit_in_mb: '128',
        invoked_function_arn: 'arn:aws:lambda:local:000000000000:function:test-fn',
        log_group_name: '/aws/lambda/test-fn',
        log_stream_name: '2026/11/23/[$LATEST]abcdef0123456789',
        client_context: { k: 'v' },
        identity: 'cid',
      });
      expect(two.result.result.context.identity).toBeNull();
      expect(r.remaining).toBeGreaterThan(5000);
      expect(r.kiln).toEqual([]);
    });

    it('round-trips large events and results', async () => {
      const { runner } = await app('index.echo');
      const s = 'é'.repeat(1_500_000) + '\n\u2028"';
      const { result } = await runner.invoke({ s });
      expect(result.result.len).toBe(s.length);
      expect(result.result.echo.s).toBe(s);
    });

    it('installs the AWS log handler lazily, when user code imports logging', async () => {
      const { runner, loaded } = await start(
        {
          'index.py': [
            'import sys',
            'def handler(event, context):',
            '    before = "logging" in sys.modules',
            '    import logging',
            '    logging.getLogger().warning("late %s", "import")',
            '    return before',
          ].join('\n'),
        },
        'index.handler',
      );
      expect(loaded.type).toBe('loaded');
      const { result, text } = await runner.invoke({}, { id: 'lazy-1' });
      expect(result.result).toBe(false);
      expect(text).toMatch(/^\[WARNING\]\t\S+Z\tlazy-1\tlate import\n$/);
    });

    it('works with other interpreter flags (-S -u, no flags)', async () => {
      for (const flags of [['-S', '-u'], []]) {
        const { runner, loaded } = await start({ 'index.py': APP }, 'index.logs', flags);
        expect(loaded.type).toBe('loaded');
        const { result, logs } = await runner.invoke({});
        expect(result.result).toBe('done');
        expect(logs).toHaveLength(8);
        const other = (await start({ 'index.py': APP, 'runner.py': 'X = 1\n' }, 'index.handler', flags)).runner;
        expect((await other.invoke({})).result.result.count).toBe(1);
      }
    });

    it('reports remaining time from deadlineMs', async () => {
      const { runner } = await app('index.remaining');
      const { a, b } = (await runner.invoke({}, { deadlineMs: Date.now() + 2000 })).result.result;
      expect(a).toBeGreaterThan(1500);
      expect(a).toBeLessThanOrEqual(2000);
      expect(a - b).toBeGreaterThanOrEqual(40);
      const late = (await runner.invoke({}, { deadlineMs: Date.now() - 1000 })).result.result;
      expect(late).toEqual({ a: 0, b: 0 });
    });

    it('captures print, stdout/stderr writes and logging in order', async () => {
      const { runner } = await app('index.logs');
      const { result, logs } = await runner.invoke({}, { id: 'logs-1' });
      expect(result).toMatchObject({ ok: true, result: 'done' });
      const resultIndex = runner.messages.indexOf(result);
      for (const l of logs) expect(runner.messages.indexOf(l)).toBeLessThan(resultIndex);
      const lines = logs.map((l) => [l.stream, l.data]);
      const ts = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;
      expect(lines[0]).toEqual(['stdout', "hello world {'a': 1}\n"]);
      expect(lines[1]).toEqual(['stderr', 'to stderr\n']);
      expect(lines[2]).toEqual(['stdout', 'partial line\n']);
      expect(lines[3]![1]).toMatch(new RegExp(`^\\[INFO\\]\\t${ts}\\tlogs-1\\tinfo arg\\n$`));
      expect(lines[4]![1]).toMatch(new RegExp(`^\\[WARNING\\]\\t${ts}\\tlogs-1\\twarned\\n$`));
      expect(lines[5]![1]).toMatch(new RegExp(`^\\[ERROR\\]\\t${ts}\\tlogs-1\\tfrom child\\n$`));
      expect(lines[6]).toEqual(['stdout', 'bytes out\n']);
      expect(lines[7]).toEqual(['stdout', 'tail without newline']);
      expect(lines).toHaveLength(8);
    });

    it('returns exceptions like AWS python3.11 (with requestId)', async () => {
      const { runner } = await app('index.boom');
      const { result, text } = await runner.invoke({}, { id: 'err-1' });
      expect(result.ok).toBe(false);
      expect(result.error).toEqual({
        errorMessage: 'x',
        errorType: 'ValueError',
        requestId: 'err-1',
        stackTrace: [`  File "${runner.taskRoot}/index.py", line ${BOOM_LINE}, in boom\n    raise ValueError("x")\n`],
      });
      // Logged like AWS too (leading spaces of the trace become NO-BREAK SPACEs).
      expect(text).toBe(
        `[ERROR] ValueError: x\nTraceback (most recent call last):\n\u00a0\u00a0File "${runner.taskRoot}/index.py", line ${BOOM_LINE}, in boom\n\u00a0\u00a0\u00a0\u00a0raise ValueError("x")\n`,
      );
      const nested = (await app('index.nested_boom')).runner;
      const n = (await nested.invoke({})).result.error;
      expect(n.errorType).toBe('KeyError');
      expect(n.errorMessage).toBe("'missing'");
      expect(n.stackTrace).toHaveLength(2);
      expect(n.stackTrace[1]).toMatch(/in inner\n {4}return \{\}\["missing"\]\n$/);
    });

    it('reports unserialisable results as Runtime.MarshalError; handles None, bytes and Decimal', async () => {
      const m = (await app('index.marshal')).runner;
      expect((await m.invoke({}, { id: 'm-1' })).result.error).toEqual({
        errorMessage: 'Unable to marshal response: Object of type datetime is not JSON serializable',
        errorType: 'Runtime.MarshalError',
        requestId: 'm-1',
        stackTrace: [],
      });
      const none = (await app('index.returns_none')).runner;
      expect((await none.invoke({})).result).toMatchObject({ ok: true, result: null });
      const bytes = (await app('index.returns_bytes')).runner;
      const raw = (await bytes.invoke({})).result;
      expect(raw.ok).toBe(true);
      expect(Buffer.from(raw.raw, 'base64')).toEqual(Buffer.from([0xff, 0xfe, ...Buffer.from(' not json')]));
      const dec = (await app('index.decimals')).runner;
      expect((await dec.invoke({})).result.result).toEqual({ i: 3, f: 1.5 });
      // NaN is not JSON: AWS returns it verbatim, so it comes back raw.
      const nan = (await app('index.nan')).runner;
      expect(Buffer.from((await nan.invoke({})).result.raw, 'base64').toString()).toBe('{"v":NaN}');
    });

    it('reports a syntax error as Runtime.UserCodeSyntaxError', async () => {
      const { runner, loaded } = await start({ 'index.py': 'def handler(event, context)\n    return 1\n' }, 'index.handler');
      expect(loaded.type).toBe('loadError');
      expect(loaded.error).toEqual({
        errorMessage: "Syntax error in module 'index': expected ':' (index.py, line 1)",
        errorType: 'Runtime.UserCodeSyntaxError',
        requestId: '',
        stackTrace: [`  File "${runner.taskRoot}/index.py" Line 1\n    def handler(event, context)\n`],
      });
      expect((await runner.invoke({})).result.error.errorType).toBe('Runtime.UserCodeSyntaxError');
    });

    it('reports a missing module as Runtime.ImportModuleError', async () => {
      const { loaded, runner } = await start({ 'other.py': '' }, 'index.handler');
      expect(loaded.error).toEqual({
        errorMessage: "Unable to import module 'index': No module named 'index'",
        errorType: 'Runtime.ImportModuleError',
        requestId: '',
        stackTrace: [],
      });
      expect(runner.messages.find((m) => m.type === 'log')!.data).toBe(
        "[ERROR] Runtime.ImportModuleError: Unable to import module 'index': No module named 'index'\nTraceback (most recent call last):\n",
      );
      const dep = await start({ 'index.py': 'import requests_not_installed\n' }, 'index.handler');
      expect(dep.loaded.error.errorMessage).toBe("Unable to import module 'index': No module named 'requests_not_installed'");
    });

    it('reports a missing handler as Runtime.HandlerNotFound', async () => {
      const { loaded } = await app('index.nope');
      expect(loaded.error).toEqual({
        errorMessage: "Handler 'nope' missing on module 'index'",
        errorType: 'Runtime.HandlerNotFound',
        requestId: '',
        stackTrace: [],
      });
      const bad = await app('indexhandler');
      expect(bad.loaded.error.errorType).toBe('Runtime.MalformedHandlerName');
      const builtin = await app('sys.exit');
      expect(builtin.loaded.error.errorType).toBe('Runtime.BuiltInModuleConflict');
    });

    it('reports other init exceptions with their type and trace', async () => {
      const { loaded } = await start({ 'index.py': 'x = 1\nraise RuntimeError("init failed")\n' }, 'index.handler');
      expect(loaded.error.errorType).toBe('RuntimeError');
      expect(loaded.error.errorMessage).toBe('init failed');
      expect(loaded.error.stackTrace.at(-1)).toMatch(/index\.py", line 2, in <module>\n {4}raise RuntimeError\("init failed"\)\n$/);
    });

    it('resolves package paths (pkg/mod.func and pkg.mod.func)', async () => {
      const files = { 'pkg/__init__.py': '', 'pkg/mod.py': 'def func(e, c):\n    return "pkg ok"\n' };
      const a = await start(files, 'pkg/mod.func');
      expect((await a.runner.invoke({})).result.result).toBe('pkg ok');
      const b = await start(files, 'pkg.mod.func');
      expect((await b.runner.invoke({})).result.result).toBe('pkg ok');
    });

    it('reports sys.exit() in a handler as Runtime.ExitError and exits', async () => {
      const { runner } = await app('index.exits');
      const { result } = await runner.invoke({}, { id: 'exit-1' });
      expect(result.error).toEqual({
        errorType: 'Runtime.ExitError',
        errorMessage: 'RequestId: exit-1 Error: Runtime exited with error: exit status 4',
        stackTrace: [],
      });
      expect(result.exiting, 'the executor must not reuse a runner that is exiting').toBe(true);
      expect((await runner.exit).code).toBe(4);
    });

    it('under -I has the site builtins and host dist-packages (exit(), yaml), as on AWS', async () => {
      const code = ['import yaml', '', 'def handler(event, context):', '    if event.get("quit"):', '        exit(3)', '    return yaml.safe_load("a: 1")'].join('\n');
      const { runner, loaded } = await start({ 'index.py': code }, 'index.handler', ['-I']);
      expect(loaded.type).toBe('loaded');
      expect((await runner.invoke({})).result.result).toEqual({ a: 1 });
      const { result } = await runner.invoke({ quit: true }, { id: 'quit-1' });
      expect(result.error?.errorMessage).toBe('RequestId: quit-1 Error: Runtime exited with error: exit status 3');
      expect((await runner.exit).code).toBe(3);
    });

    it('reports sys.exit() during init as a Runtime.ExitError loadError', async () => {
      const { loaded, runner } = await start({ 'index.py': 'import sys\nsys.exit(2)\n' }, 'index.handler');
      expect(loaded).toMatchObject({
        type: 'loadError',
        error: { errorType: 'Runtime.ExitError', errorMessage: 'Error: Runtime exited with error: exit status 2', stackTrace: [] },
      });
      expect((await runner.exit).code).toBe(2);
    });

    it('exits 0 promptly on shutdown', async () => {
      const { runner } = await app('index.handler');
      const t0 = Date.now();
      expect(await runner.shutdown()).toEqual({ code: 0, signal: null });
      expect(Date.now() - t0).toBeLessThan(1000);
    });
  });
}
