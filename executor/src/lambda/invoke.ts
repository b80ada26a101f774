import { randomUUID } from 'node:crypto';
import { resizeTmp } from '../sandbox/tmp-size.js';
import { InvokeStatus, type FunctionSpec, type InvokeRequest, type InvokeResponse } from '@kiln/proto/executor/invoke';
import type { RunnerMessage } from '../sandbox/channel.js';
import { SandboxHasOtherFunctionError, TimeoutError, type Sandbox } from '../sandbox/sandbox.js';
import { writeCode } from './code.js';
import { LogBuffer, reportLine } from './logs.js';

const LOG_CAP_BYTES = 1024 * 1024;
const LOAD_TIMEOUT_MS = 10_000;

/** Lambda's limit on a synchronous response (6 MB as AWS counts it); a larger one fails the invocation. */
export const MAX_RESPONSE_BYTES = 6_291_556;

/** What V8 prints when it dies at its heap cap (`--max-old-space-size`, bwrap-args.ts). */
const V8_HEAP_OOM = /FATAL ERROR: .*JavaScript heap out of memory/;
/** OOM kills a sandbox's cgroup had counted when it loaded its function (see `diedOfOom`). */
const oomKillsAtLoad = new WeakMap<Sandbox, number>();

type ErrorShape = { errorType: string; errorMessage: string; stackTrace: string[] };

function response(partial: Partial<InvokeResponse>): InvokeResponse {
  return {
    status: InvokeStatus.INVOKE_STATUS_FAILED,
    payload: Buffer.alloc(0),
    raw: false,
    error: undefined,
    logs: '',
    logsTruncated: false,
    initMs: 0,
    durationMs: 0,
    maxMemoryMb: 0,
    sandboxAlive: true,
    loaded: false,
    ...partial,
  };
}

function toError(value: unknown, fallbackType: string): ErrorShape {
  const e = (value ?? {}) as Partial<ErrorShape>;
  return {
    errorType: typeof e.errorType === 'string' ? e.errorType : fallbackType,
    errorMessage: typeof e.errorMessage === 'string' ? e.errorMessage : String(value),
    stackTrace: Array.isArray(e.stackTrace) ? e.stackTrace.map(String) : [],
  };
}

/**
 * Runs one invocation in a sandbox the control plane has leased to this request: loads the
 * function if the sandbox does not hold it yet, invokes with a deadline, and kills the
 * sandbox when the handler overruns its time (the control plane then forgets it).
 *
 * Memory: loading sets the sandbox cgroup's limit to the function's memorySize, so every later
 * (hot) invocation runs under it, and the kernel enforces it for the runner, its children and
 * tmpfs pages alike. The Node runner's V8 heap cap stays what it was booted with (85% of the
 * template's memoryMB, bwrap-args.ts): warm sandboxes are shared by every function of a
 * template whatever its memorySize, V8 cannot lower its cap once running, and re-executing the
 * runner at load would turn each warm start into a cold one. The cost: a function smaller than
 * its template meets the kernel's OOM killer, not V8's heap limit, and V8 sizes its heap (and so
 * how much garbage it lets build up before a full GC) for the template's memory; both ends are
 * reported as Runtime.OutOfMemory (`diedOfOom`).
 */
export async function invoke(sandbox: Sandbox, req: InvokeRequest, onChunk?: (msg: RunnerMessage) => void): Promise<InvokeResponse> {
  const logs = new LogBuffer(LOG_CAP_BYTES);
  // The sandbox claims itself for this one invocation (SandboxBusyError otherwise).
  return sandbox.invocation(logs, async () => {
    const fn = req.function;
    const memoryMB = fn?.memoryMb || sandbox.spec.memoryMB;
    let initMs: number | undefined;
    let loaded = false;
    if (sandbox.functionKey !== req.functionKey) {
      if (!fn) return response({ status: InvokeStatus.INVOKE_STATUS_NEEDS_FUNCTION });
      // Checked before any code is written: the task directory holds the loaded function's.
      if (sandbox.functionKey) throw new SandboxHasOtherFunctionError(sandbox.id);
    }
    try {
      if (fn && sandbox.functionKey !== req.functionKey) {
        const loadStarted = performance.now();
        if (sandbox.cgroup) {
          await sandbox.cgroup.setMemoryLimit(memoryMB);
          oomKillsAtLoad.set(sandbox, await sandbox.cgroup.oomKills());
        }
        // Lambda's EphemeralStorage.Size: /tmp gets the function's size before any of its code runs.
        if (fn.ephemeralStorageMb > 0) await resizeTmp(sandbox, fn.ephemeralStorageMb);
        await writeCode(sandbox.spec.taskDir, fn.files);
        const reply = await sandbox.load(req.functionKey, loadMessage(sandbox, fn, memoryMB), LOAD_TIMEOUT_MS);
        initMs = performance.now() - loadStarted;
        loaded = true;
        if (reply.type === 'loadError') {
          // Lambda reports init failures on the invocation; the instance is not reused.
          sandbox.kill();
          return response({ error: toError(reply.error, 'Runtime.ImportModuleError'), logs: logs.text(), initMs, loaded, sandboxAlive: false });
        }
      }
      return await runHandler(sandbox, req, logs, memoryMB, initMs, loaded, onChunk);
    } catch (err) {
      sandbox.kill();
      return response({ error: toError({ errorType: 'Runtime.ExitError', errorMessage: (err as Error).message }, 'Runtime.ExitError'), logs: logs.text(), sandboxAlive: false, loaded });
    }
  });
}

/** The runner's `load` message: the handler and the Lambda context it builds for each call. */
function loadMessage(sandbox: Sandbox, fn: FunctionSpec, memoryMB: number): object {
  return {
    type: 'load',
    handler: fn.handler,
    taskRoot: '/var/task',
    env: fn.env,
    function: {
      functionName: fn.name,
      functionVersion: fn.version || '$LATEST',
      memoryLimitInMB: memoryMB,
      // The tenant is the account id, as in the control plane's ARNs (functions/arn.ts), in its region.
      invokedFunctionArn: `arn:aws:lambda:${fn.region || 'us-east-1'}:${fn.tenant || 'default'}:function:${fn.name}`,
      region: fn.region || 'us-east-1',
      logGroupName: `/aws/lambda/${fn.name}`,
      logStreamName: `${new Date().toISOString().slice(0, 10).replaceAll('-', '/')}/[${fn.version || '$LATEST'}]${sandbox.id}`,
    },
  };
}

/** The runner's claim that a text is a JSON object, checked: it comes from inside the sandbox. */
function isJsonObject(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  } catch {
    return false;
  }
}

/**
 * Whether the runner died of memory: the sandbox's cgroup counted an OOM kill since the
 * function was loaded (the kernel enforces memorySize), or V8 reached its own heap cap. An
 * OOM kill of one of the handler's children in an earlier invocation that the runner survived
 * also counts here; that only mislabels a later death of another cause.
 */
async function diedOfOom(sandbox: Sandbox, logs: LogBuffer): Promise<boolean> {
  if (V8_HEAP_OOM.test(logs.text().slice(-4096))) return true;
  if (!sandbox.cgroup) return false;
  try {
    return (await sandbox.cgroup.oomKills()) > (oomKillsAtLoad.get(sandbox) ?? 0);
  } catch {
    return false; // the cgroup is already gone: reported as Runtime.ExitError with the exit status
  }
}

/**
 * The `invoke` message with the event forwarded as the text the control plane sent: parsing
 * it here only to serialise it again would cost two passes over payloads of up to 6 MB. The
 * control plane sends valid JSON (it built or validated it); raw CR/LF can only be
 * whitespace in JSON, so turning them into spaces keeps the message on one line.
 */
function invokeLine(req: InvokeRequest): string {
  let event = req.payload.length > 0 ? Buffer.from(req.payload.buffer, req.payload.byteOffset, req.payload.byteLength).toString('utf8') : 'null';
  if (event.includes('\n') || event.includes('\r')) event = event.replace(/[\r\n]/g, ' ');
  const clientContext = req.clientContext ? (JSON.parse(req.clientContext) as unknown) : null;
  const head = JSON.stringify({ type: 'invoke', id: req.requestId, deadlineMs: Date.now() + req.timeoutMs, clientContext, identity: null, traceId: traceId(), ...(req.invokedFunctionArn ? { invokedFunctionArn: req.invokedFunctionArn } : {}) });
  return `${head.slice(0, -1)},"event":${event}}`;
}

/**
 * An X-Ray trace header for the invocation, as Lambda sets `_X_AMZN_TRACE_ID` on every one (not
 * sampled: Kiln has no X-Ray daemon). SDKs and Powertools read it; a fresh root per invocation.
 */
function traceId(): string {
  // randomUUID draws from a cached pool; randomBytes made a getrandom(2) call per invocation.
  const r = (randomUUID() + randomUUID()).replaceAll('-', '');
  return `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${r.slice(0, 24)};Parent=${r.slice(24, 40)};Sampled=0`;
}

async function runHandler(sandbox: Sandbox, req: InvokeRequest, logs: LogBuffer, memoryMB: number, initMs: number | undefined, loaded: boolean, onChunk?: (msg: RunnerMessage) => void): Promise<InvokeResponse> {
  const requestId = req.requestId;
  const version = req.function?.version || '$LATEST';
  logs.line(`START RequestId: ${requestId} Version: ${version}`);
  const message = invokeLine(req);
  const started = performance.now();
  let outOfMemory = false;
  let reply: RunnerMessage | undefined;
  let failure: ErrorShape | undefined;
  let status = InvokeStatus.INVOKE_STATUS_SUCCEEDED;
  // Set when this call kills the sandbox: it is dying, not dead, until its process has exited,
  // and a dying sandbox reported alive would be parked hot and given the caller's next call.
  let killed = false;
  try {
    reply = await sandbox.invoke(message, req.requestId, req.timeoutMs, onChunk);
  } catch (err) {
    sandbox.kill();
    killed = true;
    if (err instanceof TimeoutError) {
      status = InvokeStatus.INVOKE_STATUS_TIMEOUT;
      failure = { errorType: 'Sandbox.Timedout', errorMessage: `Task timed out after ${(req.timeoutMs / 1000).toFixed(2)} seconds`, stackTrace: [] };
    } else if ((outOfMemory = await diedOfOom(sandbox, logs))) {
      status = InvokeStatus.INVOKE_STATUS_FAILED;
      failure = { errorType: 'Runtime.OutOfMemory', errorMessage: `RequestId: ${requestId} Error: Runtime exited with error: signal: killed (memory reached memorySize ${memoryMB} MB)`, stackTrace: [] };
    } else {
      status = InvokeStatus.INVOKE_STATUS_FAILED;
      failure = { errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${requestId} Error: Runtime exited with error: ${(err as Error).message}`, stackTrace: [] };
    }
  }
  const durationMs = performance.now() - started;
  // A custom runtime's own error document (as it posted it), returned by the Lambda API unchanged.
  let errorDocument: Buffer | undefined;
  if (reply && reply.ok !== true) {
    status = InvokeStatus.INVOKE_STATUS_FAILED;
    failure = toError(reply.error, 'Error');
    if (typeof reply.errorJson === 'string' && isJsonObject(reply.errorJson) && Buffer.byteLength(reply.errorJson) <= MAX_RESPONSE_BYTES) errorDocument = Buffer.from(reply.errorJson);
  }
  if (reply?.exiting === true) {
    // The runner answered and is exiting (process.exit, an uncaught error): never reuse it.
    sandbox.kill();
    killed = true;
  }
  const alive = !killed && sandbox.state !== 'dead';
  const maxMemoryMb = alive ? await sandbox.peakMemoryMB(reply?.maxRssKB) : outOfMemory ? memoryMB : 0;
  if (status === InvokeStatus.INVOKE_STATUS_TIMEOUT) logs.line(`${new Date().toISOString()} ${requestId} ${failure?.errorMessage}`);
  logs.line(`END RequestId: ${requestId}`);
  logs.line(reportLine({ requestId, durationMs, memoryMB, maxMemoryMB: Math.round(maxMemoryMb), initMs }));
  let payload: Buffer = Buffer.alloc(0);
  let raw = false;
  // A streaming handler's body went out as chunks (lambda/stream.ts); its result carries none.
  if (reply?.ok === true && reply.streamed !== true) {
    if (typeof reply.raw === 'string') {
      payload = Buffer.from(reply.raw, 'base64');
      raw = true;
    } else if (typeof reply.resultJson === 'string') {
      // The handler's JSON as its runner wrote it, checked by the channel (channel.ts).
      payload = Buffer.from(reply.resultJson);
    } else {
      payload = Buffer.from(JSON.stringify(reply.result ?? null));
    }
  }
  if (payload.length > MAX_RESPONSE_BYTES) {
    // As AWS: the handler ran, its answer is refused, and the instance stays usable.
    status = InvokeStatus.INVOKE_STATUS_FAILED;
    failure = { errorType: 'Function.ResponseSizeTooLarge', errorMessage: `Response payload size (${payload.length} bytes) exceeded maximum allowed payload size (${MAX_RESPONSE_BYTES} bytes).`, stackTrace: [] };
    payload = Buffer.alloc(0);
    raw = false;
  }
  if (errorDocument && status === InvokeStatus.INVOKE_STATUS_FAILED) payload = errorDocument;
  return response({ status, payload, raw, error: failure, logs: logs.text(), logsTruncated: logs.truncated, initMs: initMs ?? 0, durationMs, maxMemoryMb: Math.round(maxMemoryMb), sandboxAlive: alive, loaded });
}
