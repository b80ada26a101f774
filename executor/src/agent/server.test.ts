import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, status, type MethodDefinition, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { failureOf } from '@kiln/proto/error-metadata';
import { ErrorCode } from '@kiln/proto/executor/errors';
import { FilesService } from '@kiln/proto/executor/files';
import { InterpreterService } from '@kiln/proto/executor/interpreter';
import { InvokeService } from '@kiln/proto/executor/invoke';
import { NfsService } from '@kiln/proto/executor/nfs';
import { ProcessesService } from '@kiln/proto/executor/process';
import { PtyService } from '@kiln/proto/executor/pty';
import { SandboxesService } from '@kiln/proto/executor/sandboxes';
import type { Server } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { SessionExports } from '../nfs/session-exports.js';
import { SandboxManager } from '../sandbox/manager.js';
import { createAgentServer, listen } from './server.js';

const TOKEN = 'agent-test-token';
const SERVICES: Record<string, ServiceDefinition> = {
  Sandboxes: SandboxesService,
  Invoke: InvokeService,
  Processes: ProcessesService,
  Files: FilesService,
  Pty: PtyService,
  Nfs: NfsService,
  Interpreter: InterpreterService,
};

let dir: string;
let server: Server;
let client: Client;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'kiln-agent-test-'));
  const config = loadConfig({ KILN_AGENT_TOKEN: TOKEN, KILN_DATA_DIR: dir, KILN_EXECUTOR_ID: 'ex-test', KILN_TEMPLATE: 'test' });
  // No sandbox is ever booted here: every call names one that does not exist, or none.
  const sandboxes = new SandboxManager({ dataDir: dir, maxSandboxes: 1, runners: ['nodejs'], uidBase: 300_000, bwrapPath: '/usr/bin/bwrap' });
  server = createAgentServer(config, { sandboxes, exports: new SessionExports(sandboxes) });
  const port = await listen(server, '127.0.0.1', 0);
  client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
});

afterAll(() => {
  client?.close();
  server?.forceShutdown();
  rmSync(dir, { recursive: true, force: true });
});

/** Calls any method with its default (empty) request; resolves with the error, or undefined on success. */
function call(method: MethodDefinition<unknown, unknown>, metadata: Metadata): Promise<ServiceError | undefined> {
  const request = method.requestDeserialize(Buffer.alloc(0));
  const options = { deadline: Date.now() + 5000 };
  return new Promise((resolve) => {
    const done = (err: ServiceError | null): void => resolve(err ?? undefined);
    const ser = (v: unknown): Buffer => method.requestSerialize(v);
    const de = (b: Buffer): unknown => method.responseDeserialize(b);
    if (!method.requestStream && !method.responseStream) {
      client.makeUnaryRequest(method.path, ser, de, request, metadata, options, done);
    } else if (!method.requestStream) {
      const stream = client.makeServerStreamRequest(method.path, ser, de, request, metadata, options);
      stream.on('data', () => undefined);
      stream.on('error', done);
      stream.on('end', () => done(null));
    } else if (!method.responseStream) {
      const stream = client.makeClientStreamRequest(method.path, ser, de, metadata, options, done);
      // Files.Write and TarUpload with no message at all: "the write stream was empty".
      stream.end();
    } else {
      const stream = client.makeBidiStreamRequest(method.path, ser, de, metadata, options);
      stream.on('data', () => undefined);
      stream.on('error', done);
      stream.on('end', () => done(null));
      stream.write(request);
    }
  });
}

const withToken = (): Metadata => {
  const m = new Metadata();
  m.set('authorization', `Bearer ${TOKEN}`);
  return m;
};

describe('the executor agent', () => {
  it('serves one service per capability on one server', () => {
    expect(Object.values(SERVICES).map((s) => Object.values(s)[0]?.path.split('/')[1])).toEqual(['Sandboxes', 'Invoke', 'Processes', 'Files', 'Pty', 'Nfs', 'Interpreter'].map((n) => `kiln.executor.v1.${n}`));
  });

  for (const [name, service] of Object.entries(SERVICES)) {
    it(`refuses every method of ${name} without the agent token, with ERROR_CODE_UNAUTHENTICATED`, async () => {
      for (const [methodName, method] of Object.entries(service)) {
        for (const metadata of [new Metadata(), (() => { const m = new Metadata(); m.set('authorization', 'Bearer wrong-token!'); return m; })()]) {
          const err = await call(method as MethodDefinition<unknown, unknown>, metadata);
          expect(err?.code, `${name}.${methodName}`).toBe(status.UNAUTHENTICATED);
          expect(failureOf(err?.metadata)?.code, `${name}.${methodName}`).toBe(ErrorCode.ERROR_CODE_UNAUTHENTICATED);
        }
      }
    });

    it(`answers every failing method of ${name} with a typed error code, never UNKNOWN or INTERNAL`, async () => {
      for (const [methodName, method] of Object.entries(service)) {
        const err = await call(method as MethodDefinition<unknown, unknown>, withToken());
        if (!err) continue; // Health, List, Destroy and Unbind of nothing succeed
        expect(err.code, `${name}.${methodName}: ${err.details}`).not.toBe(status.UNKNOWN);
        expect(err.code, `${name}.${methodName}: ${err.details}`).not.toBe(status.INTERNAL);
        const code = failureOf(err.metadata)?.code;
        expect([ErrorCode.ERROR_CODE_SANDBOX_NOT_FOUND, ErrorCode.ERROR_CODE_INVALID_ARGUMENT], `${name}.${methodName}: ${err.details}`).toContain(code);
      }
    });
  }
});
