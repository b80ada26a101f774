'use strict';
// Kiln's JavaScript "kernel": one persistent vm context inside a session's sandbox, with
// top-level await and the last expression's value, spoken to over JSON lines like
// python_driver.py (the same messages: ready, stdout, stderr, result, error, end).
//
// Started as `node --expose-internals js-kernel.cjs`: Node's own parser (acorn) and REPL
// rewrite for top-level await are internal modules of the Node that runs this file, the host's
// Node 20 (read-only /usr), so the kernel needs no package of its own.
const vm = require('node:vm');
const util = require('node:util');
const readline = require('node:readline');
const { createRequire } = require('node:module');
const acorn = require('internal/deps/acorn/acorn/dist/acorn');
const { processTopLevelAwait } = require('internal/repl/await');

// The channel is fd 1; user code's process.stdout/stderr writes become events instead.
const channelWrite = process.stdout.write.bind(process.stdout);
// Each message starts on a line of its own even after raw bytes a cell wrote to fd 1 directly.
const emit = (obj) => channelWrite(`\n${JSON.stringify(obj)}\n`);
const CHUNK = 256 * 1024;
const text = (type) => (chunk, encoding, cb) => {
  const s = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
  for (let i = 0; i < s.length; i += CHUNK) emit({ type, text: s.slice(i, i + CHUNK) });
  if (typeof encoding === 'function') encoding();
  else if (typeof cb === 'function') cb();
  return true;
};
process.stdout.write = text('stdout');
process.stderr.write = text('stderr');

const format = (args) => `${util.formatWithOptions({ colors: false }, ...args)}\n`;
const userConsole = new console.Console({ stdout: { write: text('stdout') }, stderr: { write: text('stderr') } });
for (const level of ['log', 'info', 'debug']) userConsole[level] = (...args) => text('stdout')(format(args));
for (const level of ['error', 'warn', 'trace']) userConsole[level] = (...args) => text('stderr')(format(args));

/** MIME bundles of a value: text/plain always; objects with `_repr_*`-like hooks of Kiln's own. */
function bundle(value) {
  const data = { 'text/plain': util.inspect(value, { colors: false, depth: 4, maxArrayLength: 200, maxStringLength: 100_000 }) };
  if (value !== null && typeof value === 'object') {
    // A value may offer richer forms, as IPython's _repr_html_ does: { [Symbol.for('kiln.mime')]() { return {...} } }.
    const rich = value[Symbol.for('kiln.mime')];
    if (typeof rich === 'function') Object.assign(data, rich.call(value));
    else if (!(value instanceof Error) && !util.types.isPromise(value)) {
      try {
        const json = JSON.parse(JSON.stringify(value));
        if (json !== undefined) data['application/json'] = json;
      } catch {
        // Not JSON-serialisable (cycles, BigInt): text/plain says enough.
      }
    }
  }
  return data;
}

const sandbox = {
  console: userConsole,
  process,
  Buffer,
  URL,
  URLSearchParams,
  TextEncoder,
  TextDecoder,
  AbortController,
  AbortSignal,
  fetch: globalThis.fetch,
  Headers: globalThis.Headers,
  Request: globalThis.Request,
  Response: globalThis.Response,
  structuredClone,
  queueMicrotask,
  setTimeout,
  clearTimeout,
  setInterval,
  clearInterval,
  setImmediate,
  clearImmediate,
  performance,
  require: createRequire(`${process.cwd()}/`),
  // display(value, mime?) shows a value now, like IPython's display(): display({'text/html': '<b>x</b>'}, true) sends a raw bundle.
  display: (value, raw = false) => emit({ type: 'result', data: raw ? value : bundle(value), main: false }),
};
sandbox.globalThis = sandbox;
const context = vm.createContext(sandbox, { name: 'kiln-js' });

/**
 * Top-level `let`, `const` and `class` become `var` (and `var X = class X`), so running a cell
 * again (the way notebooks are used) does not fail with "Identifier has already been declared".
 */
function redeclarable(code) {
  let ast;
  try {
    ast = acorn.parse(code, { ecmaVersion: 'latest', sourceType: 'script', allowAwaitOutsideFunction: true, allowReturnOutsideFunction: false });
  } catch {
    return code; // Let vm report the syntax error with its own message.
  }
  const edits = [];
  for (const node of ast.body) {
    if (node.type === 'VariableDeclaration' && node.kind !== 'var') edits.push({ start: node.start, end: node.start + node.kind.length, text: 'var' });
    else if (node.type === 'ClassDeclaration' && node.id) edits.push({ start: node.start, end: node.start, text: `var ${node.id.name} = ` });
  }
  let out = code;
  for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

let count = 0;
let running; // { reject } of the cell awaiting a promise, for SIGINT

process.on('SIGINT', () => {
  // A synchronous loop is broken by breakOnSigint below; a cell waiting on a promise is here.
  running?.reject(Object.assign(new Error('execution interrupted'), { name: 'KeyboardInterrupt' }));
});
process.on('uncaughtException', (err) => emit({ type: 'stderr', text: `Uncaught ${util.inspect(err)}\n` }));
process.on('unhandledRejection', (err) => emit({ type: 'stderr', text: `Unhandled rejection ${util.inspect(err)}\n` }));

async function run(code) {
  const source = redeclarable(code);
  const wrapped = processTopLevelAwait(source);
  const script = new vm.Script(wrapped ?? source, { filename: `cell${count}.js` });
  const value = script.runInContext(context, { breakOnSigint: true, displayErrors: false });
  if (wrapped === null) return value;
  const out = await new Promise((resolve, reject) => {
    running = { reject };
    Promise.resolve(value).then(resolve, reject);
  }).finally(() => (running = undefined));
  return out?.value;
}

/** The stack without the kernel's own frames (vm, this file, Node internals). */
function userFrames(stack) {
  return stack
    .split('\n')
    .filter((line) => !/^\s+at .*(node:|js-kernel\.cjs)/.test(line))
    .join('\n');
}

function errorOf(err) {
  if (err instanceof Error || (err && typeof err === 'object' && 'stack' in err)) {
    const name = String(err.name ?? 'Error');
    return { type: 'error', name: name === 'Error' && /interrupted/.test(String(err.message)) ? 'KeyboardInterrupt' : name, value: String(err.message ?? ''), traceback: userFrames(String(err.stack ?? '')) };
  }
  return { type: 'error', name: 'Error', value: util.inspect(err), traceback: '' };
}

const queue = [];
let busy = false;
async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const code = queue.shift();
    count += 1;
    try {
      const value = await run(code);
      if (value !== undefined) emit({ type: 'result', data: bundle(value), main: true });
    } catch (err) {
      emit(errorOf(err));
    }
    emit({ type: 'end', executionCount: count, kernelRestarted: false });
  }
  busy = false;
}

readline.createInterface({ input: process.stdin, crlfDelay: Infinity }).on('line', (line) => {
  let req;
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  // A context started with the sandbox takes its session's environment before its first cell.
  if (req?.type === 'env' && req.env && typeof req.env === 'object') return void Object.assign(process.env, req.env);
  if (req?.type !== 'execute') return;
  queue.push(String(req.code ?? ''));
  void pump();
}).on('close', () => process.exit(0));

emit({ type: 'ready', interruptPid: process.pid });
