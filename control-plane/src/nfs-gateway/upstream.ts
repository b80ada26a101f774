/**
 * One gateway → executor TCP connection, owned by one client connection. It opens with a
 * PROXY protocol v1 line naming the client, so the executor checks the session's allow-list
 * against the real client address (it believes the line only from trusted proxies, see
 * executor/src/nfs/proxy-line.ts), then carries whole RPC records both ways.
 */
import { connect, isIP, type Socket } from 'node:net';
import { proxyAuthLine } from '@kiln/executor/proxy-line';
import { FramingError, RecordReader, recordHeader } from './framing.js';
import type { Upstream } from './routes.js';

/** Strips the IPv4-mapped prefix a dual-stack socket reports ("::ffff:10.0.0.1"). */
function plain(addr: string | undefined): string {
  const a = addr ?? '';
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a) ? a.slice(7) : a;
}

/** The PROXY v1 line for a client socket; UNKNOWN when the addresses cannot be told. */
export function proxyLine(client: Socket): string {
  const src = plain(client.remoteAddress);
  const dst = plain(client.localAddress);
  const family = isIP(src);
  if (family === 0 || isIP(dst) !== family || !client.remotePort || !client.localPort) return 'PROXY UNKNOWN\r\n';
  return `PROXY TCP${family} ${src} ${dst} ${client.remotePort} ${client.localPort}\r\n`;
}

/** What an upstream link reports back to its client connection. */
export interface UpstreamEvents {
  /** A whole reply record, to be written to the client as one record. */
  reply(record: Buffer): void;
  /** The link is gone (executor closed, unreachable, or sent garbage); `why` is for logs. */
  gone(why: string): void;
  /** The link's send buffer drained, so the client's reading may resume. */
  drained(): void;
}

export class UpstreamLink {
  private readonly sock: Socket;
  private readonly reader = new RecordReader();
  private closed = false;

  constructor(
    readonly upstream: Upstream,
    client: Socket,
    private readonly events: UpstreamEvents,
  ) {
    this.sock = connect({ host: upstream.host, port: upstream.port });
    this.sock.setNoDelay(true);
    // Written before the connection is up: the socket queues it ahead of every record. The
    // auth line proves to the executor that this PROXY line comes from the gateway, not from
    // another process on a trusted address (executor/src/nfs/proxy-line.ts).
    const line = proxyLine(client);
    this.sock.write(upstream.key ? line + proxyAuthLine(upstream.key, line.slice(0, -2)) : line);
    this.sock.on('data', (chunk: Buffer) => this.onData(chunk));
    this.sock.on('drain', () => this.events.drained());
    // 'close' follows every 'error'; the error's text is what the client connection logs.
    let why = 'the executor closed the connection';
    this.sock.on('error', (err) => (why = `executor NFS ${upstream.host}:${upstream.port}: ${err.message}`));
    this.sock.on('close', () => this.fail(why));
  }

  /** True while the executor is not reading our calls as fast as we send them. */
  get congested(): boolean {
    return this.sock.writableNeedDrain;
  }

  /** Sends one call record whole. */
  send(record: Buffer): void {
    if (this.closed) return;
    this.sock.cork();
    this.sock.write(recordHeader(record.length));
    this.sock.write(record);
    this.sock.uncork();
  }

  /** Stops or resumes reading replies (the client is not reading ours). */
  setPaused(paused: boolean): void {
    if (paused) this.sock.pause();
    else this.sock.resume();
  }

  close(): void {
    this.closed = true;
    this.sock.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let records: Buffer[];
    try {
      records = this.reader.push(chunk);
    } catch (err) {
      this.fail(err instanceof FramingError ? `executor sent an invalid record stream: ${err.message}` : String(err));
      return;
    }
    for (const r of records) this.events.reply(r);
  }

  private fail(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
    this.events.gone(why);
  }
}
