import { readFileSync } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import { log } from '../log.js';

/**
 * What a client can hold of the HTTP server without sending anything useful. Node bounds a
 * request's headers (headersTimeout) and its whole reception (requestTimeout, an hour here so a
 * file of gigabytes fits), but not how many sockets one client opens nor how long a body may sit
 * between two bytes: a slow-drip client (one byte a minute, from one address, with or without a
 * key) would otherwise hold sockets, file descriptors and executor streams for the whole hour.
 *
 * - `perClient`: sockets open at once from one remote address; one more is closed on accept.
 *   Behind a reverse proxy every client shares the proxy's address: raise it or set 0 (off).
 * - `bodyIdleMs`: while a request's body is being received, a socket that carries no byte for
 *   this long is closed (Node's own socket timeout, which its parser refreshes on every read).
 *   The timer is off again once the body has ended, so a long synchronous invocation or a quiet
 *   stream is never cut by it.
 * - `maxConnections`: all sockets at once, kept below the process's file-descriptor limit so a
 *   flood is refused at accept instead of starving Redis, the executors and the disk of fds.
 */
export interface ConnectionLimits {
  perClient: number;
  bodyIdleMs: number;
  maxConnections?: number;
}

/** Descriptors kept back from maxConnections for Redis, executors, files and the NFS gateway. */
const FD_RESERVE = 512;

export function guardConnections(server: Server, limits: ConnectionLimits): { open(address: string): number } {
  const open = new Map<string, number>();
  const max = limits.maxConnections ?? defaultMaxConnections();
  if (max > 0) server.maxConnections = max;
  let refusedLogged = 0;

  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const n = (open.get(address) ?? 0) + 1;
    if (limits.perClient > 0 && n > limits.perClient) {
      // Logged at most once a minute: the flood itself must not become a flood of log lines.
      if (Date.now() - refusedLogged > 60_000) {
        refusedLogged = Date.now();
        log('warn', 'connections refused: one client holds too many', { address, limit: limits.perClient });
      }
      socket.destroy();
      return;
    }
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });

  if (limits.bodyIdleMs > 0) {
    server.on('request', (req: IncomingMessage) => {
      if (!hasBody(req)) return;
      const socket = req.socket;
      // No 'timeout' listener of ours: Node's server destroys a socket that times out when nobody
      // else listens, which is the point. The parser refreshes the timer on every chunk it reads.
      socket.setTimeout(limits.bodyIdleMs);
      const off = (): void => {
        if (!socket.destroyed) socket.setTimeout(0);
      };
      req.once('end', off);
      req.once('close', off);
    });
  }

  return { open: (address) => open.get(address) ?? 0 };
}

function hasBody(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/** The soft RLIMIT_NOFILE (Linux: /proc/self/limits) less a reserve; 0 (no cap) when unknown. */
function defaultMaxConnections(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    if (!Number.isFinite(soft)) return 0;
    return Math.max(64, soft - FD_RESERVE);
  } catch {
    return 0;
  }
}
