/**
 * NfsServer: NFSv3 + MOUNT v3 on one TCP port. The security model is
 * summarised in index.ts.
 */
import { randomBytes } from 'node:crypto';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { RpcConnection } from './connection.js';
import { type CallHandler, createCallHandler } from './dispatch.js';
import { ExportRegistry } from './exports.js';
import { HandleCodec } from './handles.js';
import { TrustedProxies } from './proxy-line.js';
import type { NfsLogger, NfsServerOptions } from './types.js';

/** Concurrent client connections accepted; more are refused by the listener. */
const MAX_CONNECTIONS = 256;

const defaultLogger = (): NfsLogger => {
  const logger: NfsLogger = {
    fault: (msg, err) => console.error(`[nfs] ${msg}`, err ?? ''),
  };
  if (process.env.KILN_NFS_TRACE) logger.trace = (msg) => console.error(`[nfs] ${msg}`);
  return logger;
};

/**
 * Serves session workspaces over NFSv3. Each instance draws its own handle
 * secret and write verifier, so a restart makes old handles STALE and tells
 * clients to resend uncommitted writes.
 */
export class NfsServer {
  private readonly server: Server;
  private readonly connections = new Set<RpcConnection>();
  private readonly registry: ExportRegistry;
  private readonly handler: CallHandler;
  private readonly log: NfsLogger;
  private readonly codec = new HandleCodec();

  constructor(private readonly opts: NfsServerOptions) {
    this.log = opts.log ?? defaultLogger();
    this.registry = new ExportRegistry(opts.resolver, this.codec);
    this.handler = createCallHandler(this.registry, randomBytes(8), this.log);
    const proxies = new TrustedProxies(opts.trustedProxies);
    this.server = createServer((sock) => {
      const conn = new RpcConnection(sock, this.handler, this.log, () => this.connections.delete(conn), proxies, opts.proxyKey);
      this.connections.add(conn);
    });
    // Each connection may buffer up to ~64 MiB of calls in flight; bound the total.
    this.server.maxConnections = MAX_CONNECTIONS;
  }

  /** The tag that every handle of export `id` carries (hex), for the control plane's gateway. */
  exportTag(id: string): string {
    return this.codec.exportTag(id);
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  listen(): Promise<{ port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port ?? 0, this.opts.host ?? '127.0.0.1', () => {
        this.server.off('error', reject);
        // Later errors (e.g. EMFILE on accept) must not crash the executor.
        this.server.on('error', (e) => this.log.fault('listener error', e));
        resolve({ port: (this.server.address() as AddressInfo).port });
      });
    });
  }

  /** Stops listening, drops every connection and closes all cached fds. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    await closed;
    await this.registry.closeAll();
  }
}
