'use strict';
// Kiln runner for custom runtimes (`provided`, `provided.al2023`), run inside a
// sandbox as `/usr/bin/node [flags] /opt/kiln/runtime/provided/runner.cjs`.
//
// On `load` it serves the AWS Lambda Runtime API on 127.0.0.1:9001 (the sandbox's
// own loopback) and starts ${taskRoot}/bootstrap; invocations from the executor
// (fd 3, see ../README.md) are handed to the bootstrap through that API.
//
// Runner-only setting (environment of the runner process, not of the function):
//   KILN_RUNTIME_API_ADDR  host:port to serve the Runtime API on (default
//                          127.0.0.1:9001; port 0 = any free port, for tests
//                          that run several runners outside a sandbox).

const { openChannel, lambdaEnv, exitError, msSince } = require('../lib/protocol.cjs');

const RUNTIME = 'provided';
const MAX_RESPONSE_BYTES = 6291556; // AWS's synchronous response limit
const API = '/2018-06-01/runtime';

let channel;
let state = 'idle'; // idle -> loading -> loaded | failed; `exited` once the bootstrap is gone
let loadT0 = 0n;
let loadErrorObj = null;
let child = null;
let childGone = false;
let shuttingDown = false;
let fnMeta = {};
let cur = null; // { id, msg, delivered, done }
const queue = []; // invokes received while one was in progress
const waitingNext = []; // held GET /next responses (long poll)

// ---------------------------------------------------------------------------
// helpers

function emitLog(stream, data) {
  channel.send({ type: 'log', id: cur && !cur.done ? cur.id : null, stream, data });
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function accepted(res) {
  sendJson(res, 202, { status: 'OK' });
}

function invalidState(res, from, to) {
  sendJson(res, 403, {
    errorMessage: `State transition from ${from} to ${to} failed for runtime. Error: State transition is not allowed`,
    errorType: 'InvalidStateTransition',
  });
}

function invalidRequestId(res) {
  sendJson(res, 400, { errorMessage: 'Invalid request ID', errorType: 'InvalidRequestID' });
}

function hex(n) {
  let s = '';
  while (s.length < n)
    s += Math.floor(Math.random() * 0x100000000)
      .toString(16)
      .padStart(8, '0');
  return s.slice(0, n);
}

function traceId() {
  return `Root=1-${Math.floor(Date.now() / 1000)
    .toString(16)
    .padStart(8, '0')}-${hex(24)};Parent=${hex(16)};Sampled=0`;
}

/**
 * The `"result":<json>` part (as Buffers) when the body is valid UTF-8 JSON, else
 * `"raw":"<base64>"`. Valid JSON is passed on as sent: CR/LF can only be
 * insignificant whitespace in it, so they become spaces to keep the message one line.
 */
function bodyParts(buf) {
  const { isUtf8 } = require('buffer');
  if (buf.length && (typeof isUtf8 !== 'function' || isUtf8(buf))) {
    let valid = false;
    try {
      JSON.parse(buf.toString('utf8'));
      valid = true;
    } catch {
      /* not JSON */
    }
    if (valid) {
      let out = buf;
      if (buf.indexOf(0x0a) !== -1 || buf.indexOf(0x0d) !== -1) {
        out = Buffer.from(buf);
        for (let i = 0; i < out.length; i++) if (out[i] === 0x0a || out[i] === 0x0d) out[i] = 0x20;
      }
      return ['"result":', out];
    }
  }
  return ['"raw":"', buf.toString('base64'), '"'];
}

/** An /error body as posted, when it is a JSON object (what Lambda returns as the function error). */
function errorDocument(buf) {
  const text = buf.toString('utf8');
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? text : undefined;
  } catch {
    return undefined;
  }
}

/** Error object from an /error or /init/error body (passed through like AWS does). */
function errorFromBody(buf, headerType) {
  const text = buf.toString('utf8');
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const error = Object.assign({}, parsed);
    if (typeof error.errorType !== 'string') error.errorType = headerType || 'Unhandled';
    if (typeof error.errorMessage !== 'string') error.errorMessage = error.errorMessage == null ? '' : String(error.errorMessage);
    if (!Array.isArray(error.stackTrace)) error.stackTrace = [];
    return error;
  }
  return { errorType: headerType || 'Unhandled', errorMessage: text, stackTrace: [] };
}

/**
 * Sends a result once the bootstrap's already-written output has been read: it wrote
 * it before making the HTTP request, so one more pass through the poll phase picks it
 * up and the logs stay ordered before the result.
 */
function afterPendingOutput(fn) {
  setImmediate(() => setImmediate(fn));
}

function finishInvocation(inv, line) {
  inv.done = true;
  if (cur === inv) cur = null;
  afterPendingOutput(() => {
    if (Array.isArray(line)) channel.sendParts(line);
    else channel.sendLine(line);
    if (!cur && queue.length) startInvoke(queue.shift());
  });
}

// ---------------------------------------------------------------------------
// Runtime API

function deliver(inv, res) {
  const m = inv.msg;
  const headers = {
    'Content-Type': 'application/json',
    'Lambda-Runtime-Aws-Request-Id': inv.id,
    'Lambda-Runtime-Deadline-Ms': String(m.deadlineMs ?? ''),
    'Lambda-Runtime-Invoked-Function-Arn': String(m.invokedFunctionArn || fnMeta.invokedFunctionArn || ''),
    'Lambda-Runtime-Trace-Id': String(m.traceId || traceId()),
  };
  if (m.clientContext != null) headers['Lambda-Runtime-Client-Context'] = JSON.stringify(m.clientContext);
  if (m.identity != null) headers['Lambda-Runtime-Cognito-Identity'] = JSON.stringify(m.identity);
  const body = JSON.stringify(m.event === undefined ? null : m.event);
  headers['Content-Length'] = Buffer.byteLength(body);
  inv.delivered = true;
  res.writeHead(200, headers);
  res.end(body);
}

function onNext(req, res) {
  if (state === 'loading') {
    state = 'loaded';
    channel.send({ type: 'loaded', initDurationMs: msSince(loadT0) });
  }
  if (cur && cur.delivered && !cur.done) {
    invalidState(res, 'InvocationRunning', 'Ready');
    return;
  }
  if (cur && !cur.delivered) {
    deliver(cur, res);
    return;
  }
  waitingNext.push(res);
  res.on('close', () => {
    const i = waitingNext.indexOf(res);
    if (i !== -1) waitingNext.splice(i, 1);
  });
}

function readBody(req, cb) {
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= MAX_RESPONSE_BYTES + 1) chunks.push(c);
  });
  req.on('end', () => cb(Buffer.concat(chunks), size));
  req.on('error', () => {});
}

function checkInvocation(res, id, to) {
  if (!cur || !cur.delivered || cur.done) {
    invalidState(res, cur ? 'Ready' : 'Idle', to);
    return null;
  }
  if (decodeURIComponent(id) !== cur.id) {
    invalidRequestId(res);
    return null;
  }
  return cur;
}

/** Larger pieces of a streamed body go out in parts: the executor bounds a message's length. */
const MAX_CHUNK_BYTES = 256 * 1024;

/**
 * The Runtime API's streaming response (`Lambda-Runtime-Function-Response-Mode: streaming`): the
 * body's pieces go to the executor as `chunk` messages as they arrive (the bootstrap's writes are
 * paused while the channel is full), and the trailers `Lambda-Runtime-Function-Error-Type` /
 * `-Error-Body` (base64 of the error JSON) turn the end into a failure, as on AWS. The size limit
 * of a streamed response is the executor's (20 MB).
 */
function onStreamedResponse(req, res, inv) {
  const contentType = typeof req.headers['content-type'] === 'string' ? req.headers['content-type'] : 'application/octet-stream';
  let first = true;
  req.on('data', (c) => {
    if (inv.done) return;
    for (let off = 0; off < c.length; off += MAX_CHUNK_BYTES) {
      const piece = c.subarray(off, off + MAX_CHUNK_BYTES);
      const line = JSON.stringify({ type: 'chunk', id: inv.id, data: piece.toString('base64'), ...(first ? { contentType } : {}) }) + '\n';
      first = false;
      if (!channel.sock.destroyed && !channel.sock.write(line)) {
        req.pause();
        channel.sock.once('drain', () => req.resume());
      }
    }
  });
  req.on('error', () => {});
  req.on('end', () => {
    if (inv.done) return;
    accepted(res);
    const errorType = req.trailers['lambda-runtime-function-error-type'];
    if (typeof errorType === 'string' && errorType) {
      const body = req.trailers['lambda-runtime-function-error-body'];
      const error = errorFromBody(Buffer.from(typeof body === 'string' ? body : '', 'base64'), errorType);
      finishInvocation(inv, JSON.stringify({ type: 'result', id: inv.id, ok: false, error }));
      return;
    }
    finishInvocation(inv, JSON.stringify({ type: 'result', id: inv.id, ok: true, streamed: true, contentType }));
  });
}

function onResponse(req, res, id) {
  if (String(req.headers['lambda-runtime-function-response-mode']).toLowerCase() === 'streaming') {
    const inv = checkInvocation(res, id, 'InvocationResponse');
    if (!inv) return void req.resume();
    // One response per invocation: a second stream while the first runs would interleave with it.
    if (inv.streaming) {
      invalidState(res, 'Ready', 'InvocationResponse');
      return void req.resume();
    }
    inv.streaming = true;
    return onStreamedResponse(req, res, inv);
  }
  readBody(req, (buf, size) => {
    const inv = checkInvocation(res, id, 'InvocationResponse');
    if (!inv) return;
    if (size > MAX_RESPONSE_BYTES) {
      sendJson(res, 413, {
        errorMessage: `Exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
        errorType: 'RequestEntityTooLarge',
      });
      const error = {
        errorType: 'Function.ResponseSizeTooLarge',
        errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`,
        stackTrace: [],
      };
      finishInvocation(inv, JSON.stringify({ type: 'result', id: inv.id, ok: false, error }));
      return;
    }
    accepted(res);
    finishInvocation(inv, [`{"type":"result","id":${JSON.stringify(inv.id)},"ok":true,`, ...bodyParts(buf), '}']);
  });
}

function onError(req, res, id) {
  readBody(req, (buf) => {
    const inv = checkInvocation(res, id, 'InvocationErrorResponse');
    if (!inv) return;
    accepted(res);
    const error = errorFromBody(buf, req.headers['lambda-runtime-function-error-type']);
    // The document as posted goes along: Lambda's Invoke answers with it unchanged.
    const doc = errorDocument(buf);
    finishInvocation(inv, JSON.stringify({ type: 'result', id: inv.id, ok: false, error, ...(doc !== undefined ? { errorJson: doc } : {}) }));
  });
}

function onInitError(req, res) {
  readBody(req, (buf) => {
    const error = errorFromBody(buf, req.headers['lambda-runtime-function-error-type']);
    if (state === 'failed' || state === 'exited') {
      invalidState(res, 'InitError', 'InitError');
      return;
    }
    accepted(res);
    const wasLoading = state === 'loading';
    state = 'failed';
    loadErrorObj = error;
    if (wasLoading) {
      afterPendingOutput(() => channel.send({ type: 'loadError', error }));
    } else if (cur && !cur.done) {
      finishInvocation(cur, JSON.stringify({ type: 'result', id: cur.id, ok: false, error }));
    }
  });
}

function onRequest(req, res) {
  const url = req.url.split('?')[0];
  if (req.method === 'GET' && url === `${API}/invocation/next`) return onNext(req, res);
  if (req.method === 'POST') {
    const m = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url);
    if (m) return m[2] === 'response' ? onResponse(req, res, m[1]) : onError(req, res, m[1]);
    if (url === `${API}/init/error`) return onInitError(req, res);
  }
  req.resume();
  sendJson(res, 404, { errorMessage: `${req.method} ${url} is not supported`, errorType: 'NotFound' });
}

// ---------------------------------------------------------------------------
// The bootstrap process

function invalidEntrypoint(message) {
  return { errorType: 'Runtime.InvalidEntrypoint', errorMessage: `Error: ${message}`, stackTrace: [] };
}

/** [command, args] for the bootstrap: executables directly, scripts via shebang or /bin/sh. */
function bootstrapCommand(file) {
  const fs = require('fs');
  let head = Buffer.alloc(0);
  try {
    const fd = fs.openSync(file, 'r');
    const buf = Buffer.alloc(256);
    head = buf.subarray(0, fs.readSync(fd, buf, 0, 256, 0));
    fs.closeSync(fd);
  } catch (err) {
    return { error: invalidEntrypoint(`fork/exec ${file}: ${err.code === 'EACCES' ? 'permission denied' : err.message}`) };
  }
  let executable = true;
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    executable = false;
  }
  const isElf = head.length >= 4 && head[0] === 0x7f && head.toString('latin1', 1, 4) === 'ELF';
  const hasShebang = head.length >= 2 && head[0] === 0x23 && head[1] === 0x21;
  if (executable && (isElf || hasShebang)) return { cmd: file, args: [] };
  if (hasShebang) {
    // Not executable (e.g. the mode was lost when the code was unpacked): run the interpreter.
    const line = head.toString('utf8', 2).split('\n')[0].trim();
    const sp = line.search(/\s/);
    const interp = sp === -1 ? line : line.slice(0, sp);
    const arg = sp === -1 ? '' : line.slice(sp).trim();
    return { cmd: interp, args: arg ? [arg, file] : [file] };
  }
  if (isElf) return { error: invalidEntrypoint(`fork/exec ${file}: permission denied`) };
  return { cmd: '/bin/sh', args: [file] }; // shell script without a shebang
}

function startBootstrap(msg, apiAddr) {
  const fs = require('fs');
  const path = require('path');
  const taskRoot = msg.taskRoot || '/var/task';
  const candidates = [path.join(taskRoot, 'bootstrap'), '/opt/bootstrap'];
  const file = candidates.find((p) => {
    try {
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  });
  if (!file) return failLoad(invalidEntrypoint(`Couldn't find valid bootstrap(s): [${candidates.join(' ')}]`));
  const command = bootstrapCommand(file);
  if (command.error) return failLoad(command.error);

  const env = Object.assign({}, process.env, lambdaEnv(msg, {}, { AWS_LAMBDA_RUNTIME_API: apiAddr }));
  for (const k of Object.keys(env)) if (k.startsWith('KILN_')) delete env[k]; // runner settings
  const { spawn } = require('child_process');
  child = spawn(command.cmd, command.args, {
    cwd: taskRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group, so shutdown can kill everything it started
  });
  let openStreams = 2;
  let exitInfo = null;
  const maybeExited = () => {
    if (exitInfo && openStreams === 0) onBootstrapExit(exitInfo.code, exitInfo.signal);
  };
  for (const name of ['stdout', 'stderr']) {
    const s = child[name];
    s.setEncoding('utf8');
    s.on('data', (d) => emitLog(name, d));
    s.on('close', () => {
      openStreams--;
      maybeExited();
    });
  }
  child.on('error', (err) => {
    if (state === 'loading' && !child.pid) {
      childGone = true;
      failLoad(
        invalidEntrypoint(
          `fork/exec ${file}: ${err.code === 'EACCES' ? 'permission denied' : err.code === 'ENOENT' ? 'no such file or directory' : err.message}`,
        ),
      );
    }
  });
  child.on('exit', (code, signal) => {
    childGone = true;
    exitInfo = { code, signal };
    // Children of the bootstrap may still hold its stdout/stderr: don't wait for them long.
    setTimeout(() => {
      openStreams = 0;
      maybeExited();
    }, 200).unref();
    maybeExited();
  });
}

let exitHandled = false;
function onBootstrapExit(code, signal) {
  if (exitHandled || shuttingDown) return;
  exitHandled = true;
  const prevState = state;
  state = 'exited';
  if (prevState === 'loading') {
    // Init failed: report it; the runner stays up (the executor discards the sandbox).
    loadErrorObj = exitError(null, code, signal);
    channel.send({ type: 'loadError', error: loadErrorObj });
    loadErrorObj.exit = { code, signal };
    return;
  }
  if (cur && !cur.done) {
    cur.done = true;
    channel.send({ type: 'result', id: cur.id, ok: false, error: exitError(cur.id, code, signal), exiting: true });
    cur = null;
  }
  // The runtime is gone: exit so the executor replaces the sandbox.
  shuttingDown = true;
  channel.flushAndExit(1);
}

function failLoad(error) {
  if (state !== 'loading') return;
  state = 'failed';
  loadErrorObj = error;
  channel.send({ type: 'loadError', error });
}

function killBootstrap() {
  if (child && child.pid && !childGone) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Executor messages

function onLoad(msg) {
  if (state !== 'idle') {
    channel.send({
      type: 'loadError',
      error: { errorType: 'Runtime.InvalidState', errorMessage: `load received in state ${state}`, stackTrace: [] },
    });
    return;
  }
  loadT0 = process.hrtime.bigint();
  state = 'loading';
  fnMeta = msg.function || {};
  const addr = process.env.KILN_RUNTIME_API_ADDR || '127.0.0.1:9001';
  const colon = addr.lastIndexOf(':');
  const host = addr.slice(0, colon);
  const port = Number(addr.slice(colon + 1));
  const http = require('http');
  const server = http.createServer({ keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, onRequest);
  server.on('error', (err) => {
    failLoad({ errorType: 'Runtime.Unknown', errorMessage: `Error: cannot serve the Runtime API on ${addr}: ${err.message}`, stackTrace: [] });
  });
  server.listen(port, host, () => {
    const a = server.address();
    startBootstrap(msg, `${host}:${a.port}`);
  });
}

function onInvoke(msg) {
  const id = String(msg.id);
  if (state === 'failed' || state === 'exited') {
    let error = loadErrorObj || exitError(id, 1);
    if (error.exit) error = exitError(id, error.exit.code, error.exit.signal);
    channel.send({ type: 'result', id, ok: false, error });
    return;
  }
  if (state === 'idle') {
    channel.send({
      type: 'result',
      id,
      ok: false,
      error: { errorType: 'Runtime.NotLoaded', errorMessage: 'invoke received before load', stackTrace: [] },
    });
    return;
  }
  if (cur) {
    queue.push(msg);
    return;
  }
  startInvoke(msg);
}

function startInvoke(msg) {
  cur = { id: String(msg.id), msg, delivered: false, done: false };
  const res = waitingNext.shift();
  if (res) deliver(cur, res);
}

function onMessage(msg) {
  switch (msg && msg.type) {
    case 'invoke':
      onInvoke(msg);
      break;
    case 'load':
      onLoad(msg);
      break;
    case 'shutdown':
      shuttingDown = true;
      killBootstrap();
      process.exit(0);
      break;
    default:
      channel.send({ type: 'log', id: null, stream: 'stderr', data: `[kiln-runner] unknown message type ${JSON.stringify(msg && msg.type)}\n` });
  }
}

process.on('exit', () => {
  shuttingDown = true;
  killBootstrap();
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => process.exit(0));
}
process.on('uncaughtException', (err) => {
  // A runner bug: report what we can and go away rather than hang.
  try {
    channel.send({ type: 'log', id: null, stream: 'stderr', data: `[kiln-runner] ${err && err.stack ? err.stack : err}\n` });
    if (cur && !cur.done) {
      channel.send({ type: 'result', id: cur.id, ok: false, error: { errorType: 'Runtime.Unknown', errorMessage: String(err), stackTrace: [] }, exiting: true });
    }
  } finally {
    shuttingDown = true;
    channel.flushAndExit(1);
  }
});

channel = openChannel(onMessage, (line) => {
  channel.send({ type: 'log', id: null, stream: 'stderr', data: `[kiln-runner] bad message: ${line.slice(0, 200)}\n` });
});
channel.send({ type: 'ready', runtime: RUNTIME, pid: process.pid });
