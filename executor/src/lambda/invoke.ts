import type { InvokeRequest, InvokeResponse } from '@kiln/proto/executor';
import { InvokeStatus } from '@kiln/proto/executor';
import type { Sandbox } from '../sandbox/sandbox.js';
import { TimeoutError } from '../sandbox/sandbox.js';
import { treeRssMB } from '../sandbox/proc.js';
import { writeCode } from './code.js';
import { LogBuffer, reportLine } from './logs.js';

const LOG_CAP_BYTES = 1024 * 1024;
const LOAD_TIMEOUT_MS = 10_000;
/** How often a running invocation's memory is read; only invocations longer than this pay. */
const MEMORY_POLL_MS = 100;

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
 * sandbox when the handler overruns its time or memory (the control plane then forgets it).
 */
export async function invoke(sandbox: Sandbox, req: InvokeRequest): Promise<InvokeResponse> {
  if (sandbox.state !== 'idle') {
    return response({ error: { errorType: 'Kiln.SandboxBusy', errorMessage: `sandbox ${sandbox.id} is ${sandbox.state}`, stackTrace: [] } });
  }
  const fn = req.function;
  const memoryMB = fn?.memoryMb || sandbox.spec.memoryMB;
  const logs = new LogBuffer(LOG_CAP_BYTES);
  sandbox.state = 'busy';
  sandbox.attach(logs);
  let initMs: number | undefined;
  let loaded = false;
  try {
    if (sandbox.functionKey !== req.functionKey) {
      if (!fn) return response({ status: InvokeStatus.INVOKE_STATUS_NEEDS_FUNCTION });
      if (sandbox.functionKey) {
        return response({ error: { errorType: 'Kiln.SandboxHasOtherFunction', errorMessage: `sandbox ${sandbox.id} holds another function`, stackTrace: [] } });
      }
      logs.write('stdout', sandbox.pendingInitLogs);
      const loadStarted = performance.now();
      await writeCode(sandbox.spec.taskDir, fn.files);
      const reply = await sandbox.request(
        {
          type: 'load',
          handler: fn.handler,
          taskRoot: '/var/task',
          env: fn.env,
          function: {
            functionName: fn.name,
            functionVersion: fn.version || '$LATEST',
            memoryLimitInMB: memoryMB,
            invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${fn.name}`,
            logGroupName: `/aws/lambda/${fn.name}`,
            logStreamName: `${new Date().toISOString().slice(0, 10).replaceAll('-', '/')}/[${fn.version || '$LATEST'}]${sandbox.id}`,
          },
        },
        LOAD_TIMEOUT_MS,
      );
      initMs = performance.now() - loadStarted;
      loaded = true;
      sandbox.functionKey = req.functionKey;
      if (reply.type === 'loadError') {
        // Lambda reports init failures on the invocation; the instance is not reused.
        sandbox.kill();
        return response({ error: toError(reply.error, 'Runtime.ImportModuleError'), logs: logs.text(), initMs, loaded, sandboxAlive: false });
      }
    }
    return await runHandler(sandbox, req, logs, memoryMB, initMs, loaded);
  } catch (err) {
    sandbox.kill();
    return response({ error: toError({ errorType: 'Runtime.ExitError', errorMessage: (err as Error).message }, 'Runtime.ExitError'), logs: logs.text(), sandboxAlive: false, loaded });
  } finally {
    sandbox.attach(undefined);
    if (sandbox.state === 'busy') sandbox.state = 'idle';
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
  const head = JSON.stringify({ type: 'invoke', id: req.requestId, deadlineMs: Date.now() + req.timeoutMs, clientContext, identity: null });
  return `${head.slice(0, -1)},"event":${event}}`;
}

async function runHandler(sandbox: Sandbox, req: InvokeRequest, logs: LogBuffer, memoryMB: number, initMs: number | undefined, loaded: boolean): Promise<InvokeResponse> {
  const requestId = req.requestId;
  const version = req.function?.version || '$LATEST';
  logs.line(`START RequestId: ${requestId} Version: ${version}`);
  const message = invokeLine(req);
  const started = performance.now();
  let overMemory = 0;
  const watch = setInterval(() => {
    void treeRssMB(sandbox.runnerPid).then((mb) => {
      if (mb > memoryMB && sandbox.state === 'busy') {
        overMemory = mb;
        sandbox.kill();
      }
    });
  }, MEMORY_POLL_MS);
  let reply: Awaited<ReturnType<Sandbox['request']>> | undefined;
  let failure: ErrorShape | undefined;
  let status = InvokeStatus.INVOKE_STATUS_SUCCEEDED;
  try {
    reply = await sandbox.request(message, req.timeoutMs);
  } catch (err) {
    sandbox.kill();
    if (err instanceof TimeoutError) {
      status = InvokeStatus.INVOKE_STATUS_TIMEOUT;
      failure = { errorType: 'Sandbox.Timedout', errorMessage: `Task timed out after ${(req.timeoutMs / 1000).toFixed(2)} seconds`, stackTrace: [] };
    } else if (overMemory > 0) {
      status = InvokeStatus.INVOKE_STATUS_FAILED;
      failure = { errorType: 'Runtime.OutOfMemory', errorMessage: `RequestId: ${requestId} Error: Runtime exited with error: signal: killed (memory used ${Math.round(overMemory)} MB exceeded memorySize ${memoryMB} MB)`, stackTrace: [] };
    } else {
      status = InvokeStatus.INVOKE_STATUS_FAILED;
      failure = { errorType: 'Runtime.ExitError', errorMessage: `RequestId: ${requestId} Error: Runtime exited with error: ${(err as Error).message}`, stackTrace: [] };
    }
  } finally {
    clearInterval(watch);
  }
  const durationMs = performance.now() - started;
  if (reply && reply.ok !== true) {
    status = InvokeStatus.INVOKE_STATUS_FAILED;
    failure = toError(reply.error, 'Error');
  }
  const alive = sandbox.state !== 'dead' && status !== InvokeStatus.INVOKE_STATUS_TIMEOUT && failure?.errorType !== 'Runtime.ExitError';
  const maxMemoryMb = alive ? await sandbox.peakMemoryMB(reply?.maxRssKB) : Math.max(overMemory, memoryMB);
  if (status === InvokeStatus.INVOKE_STATUS_TIMEOUT) logs.line(`${new Date().toISOString()} ${requestId} ${failure?.errorMessage}`);
  logs.line(`END RequestId: ${requestId}`);
  logs.line(reportLine({ requestId, durationMs, memoryMB, maxMemoryMB: Math.round(maxMemoryMb), initMs }));
  let payload: Buffer = Buffer.alloc(0);
  let raw = false;
  if (reply?.ok === true) {
    if (typeof reply.raw === 'string') {
      payload = Buffer.from(reply.raw, 'base64');
      raw = true;
    } else {
      payload = Buffer.from(JSON.stringify(reply.result ?? null));
    }
  }
  return response({ status, payload, raw, error: failure, logs: logs.text(), logsTruncated: logs.truncated, initMs: initMs ?? 0, durationMs, maxMemoryMb: Math.round(maxMemoryMb), sandboxAlive: sandbox.state !== 'dead', loaded });
}
