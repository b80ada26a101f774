import { Metadata, Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { errorMetadata } from '@kiln/proto/error-metadata';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { InvokeService, InvokeStatus, type InvokeRequest, type InvokeResponse } from '@kiln/proto/executor/invoke';
import { createServer, connect as connectTcp, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isExecutorGone } from './client.js';
import { RpcError, UnaryChannel } from './unary.js';
import { executorError, SandboxLostError } from './errors.js';

type Handler = (call: ServerUnaryCall<InvokeRequest, InvokeResponse>, cb: sendUnaryData<InvokeResponse>) => void;

/** A real grpc-js server with the agent's Invoke, as the executor serves it. */
async function serve(invoke: Handler, port = 0): Promise<{ server: Server; address: string }> {
  const server = new Server();
  server.addService(InvokeService, { invoke });
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, address: `127.0.0.1:${bound}` };
}

const request = (payload: string): InvokeRequest => ({
  sandboxId: 'sbx-1',
  requestId: 'req-1',
  functionKey: 'fn',
  function: undefined,
  payload: Buffer.from(payload),
  timeoutMs: 1000,
  clientContext: '',
  invokedFunctionArn: '',
});
const answer = (payload: Buffer): InvokeResponse => ({
  status: InvokeStatus.INVOKE_STATUS_SUCCEEDED,
  payload,
  raw: false,
  error: undefined,
  logs: 'log line\n',
  logsTruncated: false,
  initMs: 1,
  durationMs: 2,
  maxMemoryMb: 3,
  sandboxAlive: true,
  loaded: true,
});

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

function channel(address: string, headers: Record<string, string> = {}, max = 1024 * 1024): UnaryChannel {
  const ch = new UnaryChannel(address, headers, max);
  cleanup.push(() => ch.close());
  return ch;
}

async function failure(p: Promise<unknown>): Promise<RpcError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RpcError);
  return err as RpcError;
}

describe('UnaryChannel against a grpc-js server', () => {
  it('makes calls with the headers given, and decodes the answers', async () => {
    const seen: Array<{ auth: unknown; timeout: number; payload: string }> = [];
    const { server, address } = await serve((call, cb) => {
      seen.push({ auth: call.metadata.get('authorization')[0], timeout: call.getDeadline() as number, payload: call.request.payload.toString() });
      cb(null, answer(Buffer.from(`echo ${call.request.payload.toString()}`)));
    });
    cleanup.push(() => server.forceShutdown());
    const ch = channel(address, { authorization: 'Bearer t0ken' });
    const results = await Promise.all([1, 2, 3].map((n) => ch.call(InvokeService.invoke, request(`p${n}`), 5000)));
    expect(results.map((r) => r.payload.toString())).toEqual(['echo p1', 'echo p2', 'echo p3']);
    expect(results[0]).toMatchObject({ status: InvokeStatus.INVOKE_STATUS_SUCCEEDED, logs: 'log line\n', sandboxAlive: true, maxMemoryMb: 3 });
    expect(seen.map((s) => s.auth)).toEqual(['Bearer t0ken', 'Bearer t0ken', 'Bearer t0ken']);
    // The deadline travels as grpc-timeout.
    expect(seen[0]!.timeout - Date.now()).toBeGreaterThan(3000);
  });

  it("gives the server's status code and message", async () => {
    const { server, address } = await serve((_call, cb) => cb({ code: status.NOT_FOUND, details: 'no sandbox sbx-1 % here ü', metadata: new Metadata() }));
    cleanup.push(() => server.forceShutdown());
    const err = await failure(channel(address).call(InvokeService.invoke, request('x'), 5000));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(err.details).toBe('no sandbox sbx-1 % here ü');
  });

  it("reads the executor's error code and data from the trailers (the one error channel)", async () => {
    const data = { path: '/workspace/ü/\u0001', pid: 7 };
    const { server, address } = await serve((_call, cb) => cb({ code: status.NOT_FOUND, details: 'gone', metadata: errorMetadata(ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND, data) }));
    cleanup.push(() => server.forceShutdown());
    const err = await failure(channel(address).call(InvokeService.invoke, request('x'), 5000));
    expect(err.failure).toEqual({ code: ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND, data });
    const rebuilt = executorError(err, 'ex-1');
    expect(rebuilt).toBeInstanceOf(SandboxLostError);
    expect(rebuilt).toMatchObject({ code: 'SandboxLost', status: 502, retryable: true, data: { ...data, executorId: 'ex-1' } });
  });

  it('fails with DEADLINE_EXCEEDED when no answer comes in time, and cancels the call', async () => {
    let cancelled = false;
    const { server, address } = await serve((call) => call.on('cancelled', () => (cancelled = true)));
    cleanup.push(() => server.forceShutdown());
    const started = Date.now();
    const err = await failure(channel(address).call(InvokeService.invoke, request('x'), 300));
    expect(err.code).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(2000);
    await new Promise((r) => setTimeout(r, 100));
    expect(cancelled).toBe(true);
  });

  it('fails when the server dies mid-call, with UNAVAILABLE when it is gone, and reconnects when it is back', async () => {
    const first = await serve(() => undefined);
    const ch = channel(first.address);
    const pending = ch.call(InvokeService.invoke, request('x'), 10_000);
    await new Promise((r) => setTimeout(r, 100));
    // A server that shuts down resets its calls (CANCELLED, as grpc-js reports it); either way
    // the runner takes it for a lost executor.
    first.server.forceShutdown();
    const lost = await failure(pending);
    expect([status.CANCELLED, status.UNAVAILABLE]).toContain(lost.code);
    expect(isExecutorGone(lost)).toBe(true);
    expect((await failure(ch.call(InvokeService.invoke, request('x'), 2000))).code).toBe(status.UNAVAILABLE);
    const port = Number(first.address.split(':')[1]);
    const second = await serve((_call, cb) => cb(null, answer(Buffer.from('back'))), port);
    cleanup.push(() => second.server.forceShutdown());
    expect((await ch.call(InvokeService.invoke, request('x'), 5000)).payload.toString()).toBe('back');
  });

  it('drops a connection that goes silent mid-call (keepalive ping), failing the call with UNAVAILABLE before its deadline', async () => {
    const { server, address } = await serve((call, cb) => {
      if (call.request.payload.toString() === 'fast') cb(null, answer(Buffer.from('ok')));
    });
    cleanup.push(() => server.forceShutdown());
    // A TCP relay that can stop forwarding without closing anything: a partition, not a crash.
    const relayed: Socket[] = [];
    const relay = createServer((downstream) => {
      const upstream = connectTcp(Number(address.split(':')[1]), '127.0.0.1');
      downstream.pipe(upstream).pipe(downstream);
      relayed.push(downstream, upstream);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    cleanup.push(() => {
      relay.close();
      for (const s of relayed) s.destroy();
    });
    const ch = new UnaryChannel(`127.0.0.1:${(relay.address() as AddressInfo).port}`, {}, 1024 * 1024, { intervalMs: 200, timeoutMs: 300 });
    cleanup.push(() => ch.close());
    expect((await ch.call(InvokeService.invoke, request('fast'), 5000)).payload.toString()).toBe('ok');
    const pending = ch.call(InvokeService.invoke, request('slow'), 30_000);
    await new Promise((r) => setTimeout(r, 50));
    for (const s of relayed) {
      s.unpipe();
      s.pause();
    }
    const started = Date.now();
    expect((await failure(pending)).code).toBe(status.UNAVAILABLE);
    expect(Date.now() - started).toBeLessThan(3000);
    // The next call opens a new connection.
    expect((await ch.call(InvokeService.invoke, request('fast'), 5000)).payload.toString()).toBe('ok');
  });

  it('takes answers of several MB, and refuses one over its limit', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    const { server, address } = await serve((_call, cb) => cb(null, answer(big)));
    cleanup.push(() => server.forceShutdown());
    const res = await channel(address, {}, 16 * 1024 * 1024).call(InvokeService.invoke, request('x'), 10_000);
    expect(res.payload.equals(big)).toBe(true);
    const err = await failure(channel(address, {}, 1024 * 1024).call(InvokeService.invoke, request('x'), 10_000));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
  });
});
