'use strict';
// Shared plumbing for the Node-based runners (node/runner.cjs, provided/runner.cjs).
// Runs inside the sandbox: no npm dependencies, and only modules Node has already
// loaded during its own bootstrap (net, fs) are required here, so that an idle
// pre-booted runner stays small. See ../README.md for the protocol.

const net = require('net');
const fs = require('fs');

const CHANNEL_FD = 3;

/**
 * Opens the executor channel on fd 3: newline-delimited JSON in both directions.
 * onMessage(msg) is called for every parsed object; a line that is not JSON is
 * reported through onBadLine(line, err).
 */
function openChannel(onMessage, onBadLine) {
  const sock = new net.Socket({ fd: CHANNEL_FD, readable: true, writable: true });
  sock.setEncoding('utf8');
  let pending = [];
  sock.on('data', (chunk) => {
    let start = 0;
    let i;
    while ((i = chunk.indexOf('\n', start)) !== -1) {
      let line = chunk.slice(start, i);
      if (pending.length) {
        pending.push(line);
        line = pending.join('');
        pending = [];
      }
      start = i + 1;
      if (line.length === 0 || line === '\r') continue;
      let msg;
      try {
        msg = JSON.parse(line);
      } catch (err) {
        onBadLine(line, err);
        continue;
      }
      onMessage(msg);
    }
    if (start < chunk.length) pending.push(start === 0 ? chunk : chunk.slice(start));
  });
  // The executor closed its end (or died): nothing left to do.
  sock.on('end', () => process.exit(0));
  sock.on('error', () => process.exit(1));

  const channel = {
    sock,
    /** Writes one already-serialised JSON object (must not contain raw newlines). */
    sendLine(line) {
      if (!sock.destroyed) sock.write(line + '\n');
    },
    send(obj) {
      channel.sendLine(JSON.stringify(obj));
    },
    /**
     * Writes one message given as pieces (strings/Buffers that concatenate to one
     * JSON object without raw newlines), without building one big string first.
     */
    sendParts(parts) {
      if (sock.destroyed) return;
      sock.cork();
      for (const p of parts) if (p.length) sock.write(p);
      sock.write('\n');
      sock.uncork();
    },
    /**
     * Synchronous write for the process 'exit' path, where async writes never
     * complete. fd 3 is non-blocking once libuv owns it, so retry on EAGAIN a
     * bounded number of times.
     */
    sendSync(obj) {
      const buf = Buffer.from(JSON.stringify(obj) + '\n', 'utf8');
      let off = 0;
      for (let tries = 0; off < buf.length && tries < 10000; tries++) {
        try {
          off += fs.writeSync(CHANNEL_FD, buf, off, buf.length - off);
        } catch (err) {
          if (err.code !== 'EAGAIN') return;
        }
      }
    },
    /** Flushes everything queued on the channel, then exits with `code`. */
    flushAndExit(code) {
      process.exitCode = code;
      const t = setTimeout(() => process.exit(code), 2000);
      t.unref();
      if (sock.destroyed) process.exit(code);
      sock.ref();
      sock.end(() => process.exit(code));
    },
  };
  return channel;
}

/** Copies an env object into process.env (values coerced to strings). */
function applyEnv(env) {
  for (const k of Object.keys(env)) {
    const v = env[k];
    if (v === undefined || v === null) delete process.env[k];
    else process.env[k] = String(v);
  }
}

/**
 * The environment a Lambda function sees: defaults (overridable by the function's
 * own env, like AWS's unreserved variables), then the function's env, then the
 * reserved variables derived from the load message (not overridable).
 */
function lambdaEnv(msg, runtimeDefaults, reserved) {
  const fn = msg.function || {};
  const userEnv = msg.env && typeof msg.env === 'object' ? msg.env : {};
  const taskRoot = msg.taskRoot || '/var/task';
  const pick = (v, envKey, dflt) => (v !== undefined && v !== null ? String(v) : (userEnv[envKey] ?? dflt));
  const env = Object.assign(
    {
      PATH: '/usr/local/bin:/usr/bin:/bin:/opt/bin',
      LANG: 'C.UTF-8',
      TZ: ':UTC',
      LD_LIBRARY_PATH: `/lib64:/usr/lib64:${taskRoot}:${taskRoot}/lib:/opt/lib`,
      AWS_REGION: fn.region ? String(fn.region) : 'us-east-1',
      AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    },
    runtimeDefaults,
    userEnv,
  );
  if (env.AWS_DEFAULT_REGION === undefined) env.AWS_DEFAULT_REGION = env.AWS_REGION;
  Object.assign(
    env,
    {
      AWS_LAMBDA_FUNCTION_NAME: pick(fn.functionName, 'AWS_LAMBDA_FUNCTION_NAME', ''),
      AWS_LAMBDA_FUNCTION_VERSION: pick(fn.functionVersion, 'AWS_LAMBDA_FUNCTION_VERSION', '$LATEST'),
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: pick(fn.memoryLimitInMB, 'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', '128'),
      AWS_LAMBDA_LOG_GROUP_NAME: pick(fn.logGroupName, 'AWS_LAMBDA_LOG_GROUP_NAME', ''),
      AWS_LAMBDA_LOG_STREAM_NAME: pick(fn.logStreamName, 'AWS_LAMBDA_LOG_STREAM_NAME', ''),
      LAMBDA_TASK_ROOT: taskRoot,
      _HANDLER: msg.handler == null ? '' : String(msg.handler),
    },
    reserved,
  );
  return env;
}

/** Go-style process status text, as AWS prints it in Runtime.ExitError messages. */
const SIGNAL_TEXT = {
  SIGHUP: 'hangup',
  SIGINT: 'interrupt',
  SIGQUIT: 'quit',
  SIGILL: 'illegal instruction',
  SIGTRAP: 'trace/breakpoint trap',
  SIGABRT: 'aborted',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGKILL: 'killed',
  SIGUSR1: 'user defined signal 1',
  SIGSEGV: 'segmentation fault',
  SIGUSR2: 'user defined signal 2',
  SIGPIPE: 'broken pipe',
  SIGALRM: 'alarm clock',
  SIGTERM: 'terminated',
  SIGXCPU: 'CPU time limit exceeded',
  SIGXFSZ: 'file size limit exceeded',
  SIGSYS: 'bad system call',
};
function exitReason(code, signal) {
  if (signal) return `Runtime exited with error: signal: ${SIGNAL_TEXT[signal] || signal}`;
  if (code === 0) return 'Runtime exited without providing a reason';
  return `Runtime exited with error: exit status ${code}`;
}
function exitError(requestId, code, signal) {
  const prefix = requestId ? `RequestId: ${requestId} ` : '';
  return { errorType: 'Runtime.ExitError', errorMessage: `${prefix}Error: ${exitReason(code, signal)}`, stackTrace: [] };
}

function msSince(t0) {
  return Math.round(Number(process.hrtime.bigint() - t0) / 1000) / 1000;
}

module.exports = { openChannel, applyEnv, lambdaEnv, exitError, exitReason, msSince };
