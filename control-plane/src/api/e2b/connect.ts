import { createConnectRouter, type ConnectRouter } from '@connectrpc/connect';
import { createFetchHandler } from '@connectrpc/connect/protocol';
import type { Hono } from 'hono';
import type { AppEnv } from '../router.js';

/** Largest Connect request body (SendInput's data, a StreamInput message). */
const READ_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Serves Connect services on Hono under `prefix`, with @connectrpc/connect's own protocol code
 * (its router and fetch adapter): JSON and binary, unary and streaming, errors and trailers as
 * Connect clients expect. gRPC and gRPC-web are off: the SDKs speak Connect.
 */
export function mountConnect(app: Hono<AppEnv>, prefix: string, register: (router: ConnectRouter) => void): void {
  const router = createConnectRouter({ grpc: false, grpcWeb: false, readMaxBytes: READ_MAX_BYTES, jsonOptions: { ignoreUnknownFields: true } });
  register(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, createFetchHandler(h)]));
  app.post(`${prefix}/:service/:method`, async (c, next) => {
    const handler = handlers.get(`/${c.req.param('service')}/${c.req.param('method')}`);
    if (!handler) return next();
    return handler(c.req.raw);
  });
}
