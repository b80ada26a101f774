/**
 * The single-port NFS gateway (KILN_NFS_PORT): clients mount every session at
 * KILN_NFS_HOST:KILN_NFS_PORT, and the gateway routes each call to the executor that holds the
 * session, by the MOUNT path or by the export tag inside the file handle. Routes come from
 * Redis, so every control-plane replica can run one.
 */
import { type AddressInfo, type Server, createServer } from 'node:net';
import { log } from '../log.js';
import { GatewayConnection } from './connection.js';
import type { RouteSource } from './routes.js';

/** Client connections at once; each may buffer a few MiB, so the total stays bounded. */
const MAX_CONNECTIONS = 1024;

export interface NfsGatewayOptions {
  /** Address to listen on (KILN_NFS_BIND_GATEWAY, default KILN_HOST). */
  host: string;
  /** Port to listen on; 0 picks a free one (tests). */
  port: number;
}

/** A listening gateway; `port` is the bound one. */
export class NfsGateway {
  private readonly server: Server;
  private readonly connections = new Set<GatewayConnection>();

  constructor(
    routes: RouteSource,
    private readonly opts: NfsGatewayOptions,
  ) {
    const debug = (msg: string, fields: Record<string, unknown>): void => log('debug', msg, fields);
    this.server = createServer((sock) => {
      const conn = new GatewayConnection(sock, routes, debug, () => this.connections.delete(conn));
      this.connections.add(conn);
    });
    this.server.maxConnections = MAX_CONNECTIONS;
  }

  /** Starts listening; resolves with the bound port. */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', reject);
        // Later listener errors (EMFILE on accept) are logged; they must not stop the control plane.
        this.server.on('error', (err) => log('warn', 'nfs gateway listener error', { error: err.message }));
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  /** Stops listening and drops every client connection (clients reconnect elsewhere). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => (this.server.listening ? this.server.close(() => resolve()) : resolve()));
    for (const c of this.connections) c.destroy();
    this.connections.clear();
    await closed;
  }
}
