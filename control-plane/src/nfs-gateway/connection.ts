/**
 * One NFS client connection to the gateway. Each call record is answered here (NULL, EXPORT,
 * unknown programs, unknown sessions and handles) or forwarded whole to the executor holding
 * its session, over one upstream connection per executor. Replies go back whole, in the order
 * they arrive; RPC matches them by xid, and xids are the client's own and unique on this
 * connection, so nothing is rewritten.
 *
 * Buffering is bounded: at most one partial record per direction and link, and reading stops
 * while too many lookups are pending or a peer is not reading what we send it.
 */
import type { Socket } from 'node:net';
import { decide } from './decide.js';
import { RecordReader, recordHeader } from './framing.js';
import type { RouteSource, Upstream } from './routes.js';
import { UpstreamLink } from './upstream.js';

/** Calls waiting for a route lookup before the client's reading pauses. */
const MAX_PENDING_LOOKUPS = 32;

/** Where the connection reports why it closed a client (debug detail, never a crash). */
export type GatewayLog = (msg: string, fields: Record<string, unknown>) => void;

export class GatewayConnection {
  private readonly reader = new RecordReader();
  private readonly links = new Map<string, UpstreamLink>();
  private lookups = 0;
  private paused = false;
  private closed = false;

  constructor(
    private readonly sock: Socket,
    private readonly routes: RouteSource,
    private readonly log: GatewayLog,
    onClose: () => void,
  ) {
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => {
      for (const l of this.links.values()) l.setPaused(false);
      this.updateFlow();
    });
    sock.on('error', (err) => this.log('nfs gateway client connection error', { client: sock.remoteAddress, error: err.message }));
    sock.on('close', () => {
      this.shutdown();
      onClose();
    });
  }

  /** Drops the client and every upstream link (garbage, executor gone, gateway stopping). */
  destroy(why?: string): void {
    if (why) this.log('nfs gateway closed a client connection', { client: this.sock.remoteAddress, why });
    this.shutdown();
    this.sock.destroy();
  }

  private shutdown(): void {
    this.closed = true;
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let records: Buffer[];
    try {
      records = this.reader.push(chunk);
    } catch (err) {
      this.destroy((err as Error).message);
      return;
    }
    for (const rec of records) {
      if (this.closed) return;
      this.onRecord(rec);
    }
  }

  private onRecord(rec: Buffer): void {
    let d;
    try {
      d = decide(rec);
    } catch (err) {
      // No readable call header, so no xid to answer: the stream is garbage.
      this.destroy(`unreadable call: ${(err as Error).message}`);
      return;
    }
    if (d.to === 'local') {
      this.write(d.reply);
      return;
    }
    this.lookups++;
    this.updateFlow();
    const lookup = d.to === 'session' ? this.routes.bySession(d.sessionId) : this.routes.byTag(d.tag);
    lookup
      .then((upstream) => {
        if (!upstream) this.write(d.miss);
        else if ('refused' in upstream) this.write(d.refused[upstream.refused]);
        else this.forward(upstream, rec);
      })
      // Redis unreachable: the client cannot be answered truthfully, so it reconnects and retries.
      .catch((err: unknown) => this.destroy(`route lookup failed: ${String(err)}`))
      .finally(() => {
        this.lookups--;
        this.updateFlow();
      });
  }

  private forward(upstream: Upstream, rec: Buffer): void {
    if (this.closed) return;
    const key = `${upstream.host}:${upstream.port}`;
    let link = this.links.get(key);
    if (!link) {
      link = new UpstreamLink(upstream, this.sock, {
        reply: (r) => this.write(r),
        // Calls in flight on that executor would never be answered: the client reconnects.
        gone: (why) => this.destroy(why),
        drained: () => this.updateFlow(),
      });
      this.links.set(key, link);
    }
    link.send(rec);
    this.updateFlow();
  }

  /** Writes one reply record whole (corked, so two replies never interleave). */
  private write(record: Buffer): void {
    if (this.closed || this.sock.destroyed) return;
    this.sock.cork();
    this.sock.write(recordHeader(record.length));
    this.sock.write(record);
    this.sock.uncork();
    if (this.sock.writableNeedDrain) for (const l of this.links.values()) l.setPaused(true);
  }

  /** Pauses reading calls while lookups pile up or an executor is not taking our calls. */
  private updateFlow(): void {
    if (this.closed) return;
    const busy = this.lookups >= MAX_PENDING_LOOKUPS || [...this.links.values()].some((l) => l.congested);
    if (busy && !this.paused) {
      this.paused = true;
      this.sock.pause();
    } else if (!busy && this.paused) {
      this.paused = false;
      this.sock.resume();
    }
  }
}
