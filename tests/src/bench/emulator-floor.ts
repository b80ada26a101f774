import { createServer, type Server } from 'node:http';
import { Worker } from 'node:worker_threads';

/**
 * The floor that stands for an unsandboxed Lambda emulator (serverless-offline's default mode,
 * SAM's warm containers without the container): a bare HTTP server that answers the Lambda
 * Invoke route by handing the event to the handler in a worker thread and sending its result
 * back. It isolates nothing, queues nothing and keeps no log tail; Kiln is measured against it
 * through the same AWS SDK client in the same run (issue 27).
 */
export interface EmulatorFloor {
  endpoint: string;
  close(): Promise<void>;
}

// The worker evaluates the handler the way a CommonJS module would see it and answers each
// message with its result; many invocations may be in flight at once, as in the emulator.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const module_ = { exports: {} };
new Function('exports', 'module', 'require', workerData.code)(module_.exports, module_, require);
const handler = module_.exports.handler;
parentPort.on('message', ({ id, event }) => {
  Promise.resolve()
    .then(() => handler(event, { awsRequestId: String(id), getRemainingTimeInMillis: () => 3000 }))
    .then((result) => parentPort.postMessage({ id, ok: true, result }), (err) => parentPort.postMessage({ id, ok: false, error: String(err) }));
});
`;

export async function startEmulatorFloor(code: string): Promise<EmulatorFloor> {
  const worker = new Worker(WORKER, { eval: true, workerData: { code } });
  const waiting = new Map<number, (m: { ok: boolean; result?: unknown; error?: string }) => void>();
  worker.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
    waiting.get(m.id)?.(m);
    waiting.delete(m.id);
  });
  let next = 0;
  const route = /^\/2015-03-31\/functions\/[^/]+\/invocations$/;
  const server: Server = createServer((req, res) => {
    if (req.method !== 'POST' || !route.test((req.url ?? '').split('?')[0] ?? '')) {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const id = next++;
      waiting.set(id, (m) => {
        const body = m.ok ? JSON.stringify(m.result ?? null) : JSON.stringify({ errorType: 'Error', errorMessage: m.error });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(m.ok ? {} : { 'x-amz-function-error': 'Unhandled' }) });
        res.end(body);
      });
      worker.postMessage({ id, event: chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {} });
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await worker.terminate();
    },
  };
}
