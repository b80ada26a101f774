'use strict';
// Kiln runner for Node.js 20 functions (AWS nodejs20.x semantics), run inside a
// sandbox as `/usr/bin/node [flags] /opt/kiln/runtime/node/runner.cjs`.
// Talks to the executor over fd 3 (newline-delimited JSON, see ../README.md).
//
// Boot must stay light: only modules Node has loaded for its own bootstrap are
// required before the `load` message; everything else (util, url, ESM loader...)
// is pulled in by `load`.

const { openChannel, applyEnv, lambdaEnv, exitError, msSince } = require('../lib/protocol.cjs');

const RUNTIME = 'nodejs';
const REQUEST_ID_SYMBOL = Symbol.for('aws.lambda.runtime.requestId');
const NOOP = () => {};

let channel;
let state = 'idle'; // idle -> loading -> loaded | failed
let runtimeObj = null; // `Runtime` instance holding the handler (for AWS-like stack frames)
let loadErrorObj = null;
let cur = null; // the invocation in progress
const queue = []; // invokes received while one was running (the executor should not do this)
let shuttingDown = false;
let util = null; // loaded by `load`
let streaming = null; // ./streaming.cjs, loaded by `load`

// ---------------------------------------------------------------------------
// Errors, shaped like aws-lambda-nodejs-runtime-interface-client's Errors.js

class RuntimeError extends Error {}
function runtimeErrorClass(name) {
  const C = class extends RuntimeError {};
  Object.defineProperty(C, 'name', { value: name });
  C.prototype.name = `Runtime.${name}`;
  return C;
}
const ImportModuleError = runtimeErrorClass('ImportModuleError');
const HandlerNotFound = runtimeErrorClass('HandlerNotFound');
const MalformedHandlerName = runtimeErrorClass('MalformedHandlerName');
const UserCodeSyntaxError = runtimeErrorClass('UserCodeSyntaxError');
class UnhandledPromiseRejection extends RuntimeError {
  constructor(reason, promise) {
    super(reason);
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

function isErrorLike(obj) {
  return obj && obj.name && obj.message && obj.stack && typeof obj.name === 'string' && typeof obj.message === 'string' && typeof obj.stack === 'string';
}

/** The error object of a `result`/`loadError` message (AWS calls the stack `trace`). */
function toRapid(error) {
  try {
    if (error instanceof Error || isErrorLike(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        stackTrace: typeof error.stack === 'string' ? error.stack.split('\n') : [],
      };
    }
    return { errorType: typeof error, errorMessage: error.toString(), stackTrace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
      stackTrace: [],
    };
  }
}

/** "\t{json}" rendering AWS uses in `Invoke Error` / `Uncaught Exception` log lines. */
function toFormatted(error) {
  const withProps = (_k, v) => {
    if (v instanceof Error) {
      const ret = Object.assign({ errorType: v.name, errorMessage: v.message, code: v.code }, v);
      if (typeof v.stack === 'string') ret.stack = v.stack.split('\n');
      return ret;
    }
    return v;
  };
  try {
    return '\t' + JSON.stringify(error, withProps);
  } catch {
    return '\t' + JSON.stringify(toRapid(error));
  }
}

function intoError(err) {
  return err instanceof Error ? err : new Error(err);
}

// ---------------------------------------------------------------------------
// Logging

// The executor keeps 1 MiB of logs per invocation; sending more only fills this process's
// socket buffer (a handler printing megabytes would blow its memory limit), so stop a bit
// past the executor's cap: it still sees that output was cut and flags the truncation.
const LOG_CAP_CHARS = 1280 * 1024;
let logSent = 0;
let logOwner;

function emitLog(stream, data) {
  const owner = cur ? cur.id : null;
  if (owner !== logOwner) {
    logOwner = owner;
    logSent = 0;
  }
  if (logSent >= LOG_CAP_CHARS) return;
  logSent += data.length;
  channel.send({ type: 'log', id: owner, stream, data });
}

function logLine(level, text) {
  emitLog('stdout', `${new Date().toISOString()}\t${global[REQUEST_ID_SYMBOL]}\t${level}\t${text}\n`);
}

function patchConsole() {
  const mk =
    (level) =>
    (msg, ...params) =>
      logLine(level, util.format(msg, ...params));
  console.log = mk('INFO');
  console.info = mk('INFO');
  console.debug = mk('DEBUG');
  console.warn = mk('WARN');
  console.error = mk('ERROR');
  console.trace = mk('TRACE');
  console.fatal = mk('FATAL');
}

/** Direct process.stdout/stderr writes become `log` messages too (ordered with results). */
function patchStream(stream, name) {
  stream.write = function write(chunk, encoding, cb) {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    let data;
    if (typeof chunk === 'string') {
      data = encoding && !/^utf-?8$/i.test(encoding) ? Buffer.from(chunk, encoding).toString('utf8') : chunk;
    } else if (chunk instanceof Uint8Array) {
      data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('utf8');
    } else {
      data = String(chunk);
    }
    if (data.length) emitLog(name, data);
    if (typeof cb === 'function') process.nextTick(cb);
    return true;
  };
}

// ---------------------------------------------------------------------------
// Loading the handler (mirrors UserFunction.js of the AWS nodejs runtime client)

const FUNCTION_EXPR = /^([^.]*)\.(.*)$/;

async function loadHandler(appRoot, fullHandlerString) {
  const path = require('path');
  const fs = require('fs');
  if (fullHandlerString.includes('..')) {
    throw new MalformedHandlerName(`'${fullHandlerString}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`);
  }
  const handlerString = path.basename(fullHandlerString);
  const moduleRoot = fullHandlerString.substring(0, fullHandlerString.indexOf(handlerString));
  const match = handlerString.match(FUNCTION_EXPR);
  if (!match || match.length !== 3) throw new MalformedHandlerName('Bad handler');
  const [, moduleName, handlerPath] = match;

  const tryRequireFile = (file, ext) => {
    const p = file + (ext || '');
    return fs.existsSync(p) ? require(p) : undefined;
  };
  const tryImport = async (file, ext) => {
    const p = file + (ext || '');
    if (!fs.existsSync(p)) return undefined;
    return import(require('url').pathToFileURL(p).href);
  };
  const folderIsTypeModule = (folder) => {
    for (;;) {
      if (folder.endsWith('/node_modules')) return false;
      const pj = path.join(folder, '/package.json');
      if (fs.existsSync(pj)) {
        try {
          const pkg = JSON.parse(fs.readFileSync(pj));
          if (pkg) return pkg.type === 'module';
        } catch (e) {
          console.warn(`${pj} cannot be read, it will be ignored for ES module detection purposes.`, e);
          return false;
        }
      }
      if (folder === '/') return false;
      folder = path.resolve(folder, '..');
    }
  };

  let userApp;
  try {
    const lambdaStylePath = path.resolve(appRoot, moduleRoot, moduleName);
    userApp = tryRequireFile(lambdaStylePath);
    if (!userApp) {
      const pjHasModule = fs.existsSync(lambdaStylePath + '.js') && folderIsTypeModule(path.dirname(lambdaStylePath + '.js'));
      if (!pjHasModule) userApp = tryRequireFile(lambdaStylePath, '.js');
      if (!userApp) {
        userApp =
          (pjHasModule && (await tryImport(lambdaStylePath, '.js'))) || (await tryImport(lambdaStylePath, '.mjs')) || tryRequireFile(lambdaStylePath, '.cjs');
      }
      if (!userApp) {
        // Node-style resolution relative to the task root (node_modules, directories...).
        userApp = require(require.resolve(moduleName, { paths: [appRoot, moduleRoot] }));
      }
    }
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(e);
    if (e && e.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(e);
    throw e;
  }

  const handlerFunc = handlerPath.split('.').reduce((nested, key) => nested && nested[key], userApp);
  if (!handlerFunc) throw new HandlerNotFound(`${fullHandlerString} is undefined or not exported`);
  if (typeof handlerFunc !== 'function') throw new HandlerNotFound(`${fullHandlerString} is not a function`);
  return handlerFunc;
}

class Runtime {
  constructor(handler) {
    this.handler = handler;
  }
}

async function onLoad(msg) {
  const t0 = process.hrtime.bigint();
  if (state !== 'idle') {
    channel.send({
      type: 'loadError',
      error: { errorType: 'Runtime.InvalidState', errorMessage: `load received in state ${state}`, stackTrace: [] },
    });
    return;
  }
  state = 'loading';
  try {
    util = require('util');
    const taskRoot = msg.taskRoot || '/var/task';
    for (const k of Object.keys(process.env)) if (k.startsWith('KILN_')) delete process.env[k]; // runner settings
    applyEnv(
      lambdaEnv(
        msg,
        {
          NODE_PATH: `/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules:${taskRoot}`,
        },
        { AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs20.x', LAMBDA_RUNTIME_DIR: __dirname },
      ),
    );
    // NODE_PATH is normally read once at startup; re-read it now that it is set. The CJS
    // loader's class is this module's constructor: require('module') would also load the ESM
    // loader's builtins (about 1 ms of a warm start), which only ESM handlers need.
    const Module = module.constructor;
    if (typeof Module._initPaths === 'function') Module._initPaths();
    process.chdir(taskRoot);
    patchConsole();
    patchStream(process.stdout, 'stdout');
    patchStream(process.stderr, 'stderr');
    streaming = require('./streaming.cjs');
    streaming.installAwslambda();
    runtimeObj = new Runtime(await loadHandler(taskRoot, process.env._HANDLER));
    state = 'loaded';
    channel.send({ type: 'loaded', initDurationMs: msSince(t0) });
  } catch (err) {
    if (state !== 'loading') return; // a fatal handler already reported it
    state = 'failed';
    reportLoadError(err);
  }
}

function reportLoadError(err) {
  loadErrorObj = toRapid(err);
  if (util) logLine('ERROR', util.format('Uncaught Exception', toFormatted(err)));
  channel.send({ type: 'loadError', error: loadErrorObj });
}

// ---------------------------------------------------------------------------
// Invocations (mirrors Runtime.js / CallbackContext.js of the AWS client)

function onInvoke(msg) {
  if (cur) {
    queue.push(msg);
    return;
  }
  if (state !== 'loaded') {
    const error = loadErrorObj || {
      errorType: 'Runtime.NotLoaded',
      errorMessage: `invoke received in state ${state}`,
      stackTrace: [],
    };
    channel.send({ type: 'result', id: msg.id, ok: false, error });
    return;
  }
  const inv = { id: String(msg.id), done: false, beforeExit: NOOP };
  cur = inv;
  global[REQUEST_ID_SYMBOL] = inv.id;
  if (msg.traceId) process.env._X_AMZN_TRACE_ID = String(msg.traceId);
  else delete process.env._X_AMZN_TRACE_ID;
  // While an invocation runs, fd 3 must not keep the event loop alive: 'beforeExit'
  // then fires exactly when the function has no pending work left, which is what
  // callbackWaitsForEmptyEventLoop (and the no-callback default) wait for.
  channel.sock.unref();

  let waitForEmptyEventLoop = true;
  let completeInvoked = false;
  const complete = (result) => {
    if (completeInvoked) {
      console.error('Invocation has already been reported as done. Cannot call complete more than once per invocation.');
      return;
    }
    completeInvoked = true;
    postResult(inv, result);
  };
  const postError = (err) => {
    console.error('Invoke Error', toFormatted(intoError(err)));
    postFailure(inv, toRapid(err));
  };
  const rawCallback = (err, result) => {
    inv.beforeExit = NOOP;
    if (err !== undefined && err !== null) postError(err);
    else if (!waitForEmptyEventLoop) complete(result);
    else inv.beforeExit = () => complete(result);
  };
  const done = (err, result) => {
    inv.beforeExit = NOOP;
    if (err !== undefined && err !== null) postError(err);
    else complete(result);
  };
  let finished = false;
  const onlyFirst = (fn) =>
    function () {
      if (!finished) {
        fn.apply(null, arguments);
        finished = true;
      }
    };
  const callback = onlyFirst(rawCallback);
  const deadline = Number(msg.deadlineMs);
  const env = process.env;
  const context = {
    get callbackWaitsForEmptyEventLoop() {
      return waitForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value) {
      waitForEmptyEventLoop = value;
    },
    succeed: onlyFirst((result) => done(null, result)),
    fail: onlyFirst((err) => (err === undefined || err === null ? done('handled') : done(err, null))),
    done: onlyFirst(done),
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: msg.clientContext == null ? undefined : msg.clientContext,
    identity: msg.identity == null ? undefined : msg.identity,
    invokedFunctionArn: msg.invokedFunctionArn || invokedFunctionArn,
    awsRequestId: inv.id,
    getRemainingTimeInMillis() {
      return deadline - Date.now();
    },
  };
  if (streaming.isStreaming(runtimeObj.handler)) {
    const sendChunk = (buf, contentType) => {
      if (inv.done || channel.sock.destroyed) return true;
      return channel.sock.write(JSON.stringify({ type: 'chunk', id: inv.id, data: buf.toString('base64'), ...(contentType !== undefined ? { contentType } : {}) }) + '\n');
    };
    const waitDrain = (cb) => channel.sock.once('drain', cb);
    const streamDone = (err, contentType) => (err ? postError(err) : postStreamed(inv, contentType));
    try {
      streaming.invokeStreaming(runtimeObj.handler, msg.event, context, sendChunk, waitDrain, streamDone, (fn) => (inv.beforeExit = fn));
    } catch (err) {
      postError(err);
    }
    return;
  }
  // Handler that neither returns a promise nor calls back: null once the loop is empty.
  inv.beforeExit = () => {
    completeInvoked = true;
    postResult(inv, null);
  };
  try {
    const result = runtimeObj.handler(msg.event, context, callback);
    if (result && typeof result.then === 'function') {
      result.then(context.succeed, context.fail).catch(context.fail);
    }
  } catch (err) {
    callback(err);
  }
}

let invokedFunctionArn;

function postResult(inv, value) {
  if (inv.done) return;
  let body;
  try {
    body = JSON.stringify(value === undefined ? null : value);
  } catch {
    const err = new Error('Unable to stringify response body');
    console.error('Invoke Error', toFormatted(err));
    postFailure(inv, toRapid(err));
    return;
  }
  if (body === undefined) body = 'null'; // e.g. a function or a symbol
  channel.sendLine(`{"type":"result","id":${JSON.stringify(inv.id)},"ok":true,"maxRssKB":${maxRssKB()},"result":${body}}`);
  finish(inv);
}

/** A streaming handler's end: its body went out as `chunk` messages. */
function postStreamed(inv, contentType) {
  if (inv.done) return;
  channel.send({ type: 'result', id: inv.id, ok: true, maxRssKB: maxRssKB(), streamed: true, contentType });
  finish(inv);
}

/** `exiting`: the runner exits right after this answer, so the executor must not reuse the sandbox. */
function postFailure(inv, error, exiting = false) {
  if (inv.done) return;
  channel.send({ type: 'result', id: inv.id, ok: false, maxRssKB: maxRssKB(), error, ...(exiting ? { exiting: true } : {}) });
  finish(inv);
}

/**
 * Peak resident memory of this process (VmHWM, kB) for the REPORT line: one getrusage call
 * here saves the executor reading /proc/<pid>/status after every invocation.
 */
function maxRssKB() {
  return process.resourceUsage().maxRSS;
}

function finish(inv) {
  inv.done = true;
  inv.beforeExit = NOOP;
  if (cur === inv) cur = null;
  channel.sock.ref();
  if (queue.length && !cur) setImmediate(() => !cur && queue.length && onInvoke(queue.shift()));
}

// ---------------------------------------------------------------------------
// Process-level events

function onFatal(error, kind) {
  // kind: 'exception' | 'rejection'
  const code = kind === 'rejection' ? 128 : 129;
  if (util) {
    logLine('ERROR', util.format(kind === 'rejection' ? 'Unhandled Promise Rejection' : 'Uncaught Exception', toFormatted(error)));
  }
  if (cur && !cur.done) {
    postFailure(cur, toRapid(error), true);
  } else if (state === 'loading') {
    state = 'failed';
    loadErrorObj = toRapid(error);
    channel.send({ type: 'loadError', error: loadErrorObj });
  }
  // Like AWS: the runtime process exits and the sandbox gets replaced.
  shuttingDown = true;
  channel.flushAndExit(code);
}

function installProcessHandlers() {
  process.on('uncaughtException', (err) => onFatal(err, 'exception'));
  process.on('unhandledRejection', (reason, promise) => onFatal(new UnhandledPromiseRejection(reason, promise), 'rejection'));
  process.on('beforeExit', () => {
    if (cur && !cur.done && cur.beforeExit !== NOOP) {
      const listener = cur.beforeExit;
      cur.beforeExit = NOOP;
      listener();
    }
    // Whatever happened, keep waiting for the executor while the channel is open.
    if (!channel.sock.destroyed) channel.sock.ref();
  });
  process.on('exit', (code) => {
    if (shuttingDown) return;
    // User code called process.exit(): report it like AWS reports a runtime exit.
    if (cur && !cur.done) {
      cur.done = true;
      channel.sendSync({ type: 'result', id: cur.id, ok: false, error: exitError(cur.id, code), exiting: true });
    } else if (state === 'loading') {
      channel.sendSync({ type: 'loadError', error: exitError(null, code) });
    }
  });
}

function onMessage(msg) {
  switch (msg && msg.type) {
    case 'invoke':
      onInvoke(msg);
      break;
    case 'load':
      invokedFunctionArn = msg.function && msg.function.invokedFunctionArn;
      onLoad(msg);
      break;
    case 'shutdown':
      shuttingDown = true;
      process.exit(0);
      break;
    default:
      channel.send({ type: 'log', id: null, stream: 'stderr', data: `[kiln-runner] unknown message type ${JSON.stringify(msg && msg.type)}\n` });
  }
}

channel = openChannel(onMessage, (line) => {
  channel.send({ type: 'log', id: null, stream: 'stderr', data: `[kiln-runner] bad message: ${line.slice(0, 200)}\n` });
});
installProcessHandlers();
channel.send({ type: 'ready', runtime: RUNTIME, pid: process.pid });
