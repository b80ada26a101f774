/**
 * One client TCP connection: record decoding, pipelined dispatch, and
 * flow control. Calls run concurrently and replies go out as they complete
 * (RPC matches them by xid). Nothing thrown here may escape into the socket's
 * event handlers: the server lives inside the executor process.
 */
import type { Socket } from 'node:net';
import type { CallHandler } from './dispatch.js';
import type { NfsLogger } from './types.js';
import { AUTH_LINE_BYTES, type TrustedProxies, readProxyAuth, readProxyPreamble } from './proxy-line.js';
import { RecordDecoder, frameRecord } from './record.js';
import { AcceptStat, errorReply, parseCall } from './rpc.js';

/** Calls in progress per connection before we stop reading from it. */
const MAX_INFLIGHT = 32;

export class RpcConnection {
  private readonly decoder = new RecordDecoder();
  private inflight = 0;
  private readingPaused = false;
  private closed = false;
  /** The address allow-lists are checked against: the peer's, or the one its PROXY line names. */
  private client: string | undefined;
  /** Bytes held until we know whether the connection opens with a PROXY line. */
  private preamble: Buffer | undefined = Buffer.alloc(0);

  constructor(
    private readonly sock: Socket,
    private readonly handle: CallHandler,
    private readonly log: NfsLogger,
    onClose: () => void,
    private readonly proxies?: TrustedProxies,
    /** The agent token: a PROXY line counts only with its auth line (proxy-line.ts); undefined trusts the line alone. */
    private readonly proxyKey?: string,
  ) {
    this.client = sock.remoteAddress;
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => this.onData(chunk));
    sock.on('drain', () => this.updateFlow());
    sock.on('error', (e) => this.log.trace?.(`connection error: ${e.message}`));
    sock.on('close', () => {
      this.closed = true;
      onClose();
    });
  }

  /** Drops the connection (garbage from the peer, or server shutdown). */
  destroy(): void {
    this.closed = true;
    this.sock.destroy();
  }

  private onData(data: Buffer): void {
    if (this.closed) return;
    let chunk = data;
    if (this.preamble) {
      const held = Buffer.concat([this.preamble, chunk]);
      const p = readProxyPreamble(held);
      if (p.kind === 'need-more') {
        this.preamble = held;
        return;
      }
      if (p.kind === 'invalid' || (p.kind === 'line' && !this.proxies?.trusts(this.sock.remoteAddress))) {
        // An untrusted peer claiming another address is treated as garbage, never believed.
        this.preamble = undefined;
        this.log.trace?.(`closing connection from ${this.sock.remoteAddress}: ${p.kind === 'invalid' ? p.why : 'PROXY line from an untrusted peer'}`);
        this.destroy();
        return;
      }
      let rest = p.kind === 'line' ? p.rest : held;
      if (p.kind === 'line' && this.proxyKey !== undefined) {
        const auth = readProxyAuth(p.rest, this.proxyKey, p.line);
        if (auth === 'need-more') {
          this.preamble = held;
          return;
        }
        if (auth === 'bad') {
          this.preamble = undefined;
          this.log.trace?.(`closing connection from ${this.sock.remoteAddress}: PROXY line without a valid auth line`);
          this.destroy();
          return;
        }
        rest = p.rest.subarray(AUTH_LINE_BYTES);
      }
      this.preamble = undefined;
      if (p.kind === 'line' && p.client) this.client = p.client;
      chunk = rest;
    }
    let records: Buffer[];
    try {
      records = this.decoder.push(chunk);
    } catch (e) {
      this.log.trace?.(`closing connection: ${(e as Error).message}`);
      this.destroy();
      return;
    }
    for (const rec of records) {
      if (this.closed) return;
      this.onRecord(rec);
    }
  }

  private onRecord(rec: Buffer): void {
    let parsed;
    try {
      parsed = parseCall(rec);
    } catch (e) {
      // No trustworthy header to answer: the stream is garbage.
      this.log.trace?.(`closing connection: bad call header (${(e as Error).message})`);
      this.destroy();
      return;
    }
    if (!parsed.ok) {
      this.send(parsed.reply);
      RecordDecoder.recycle(rec);
      return;
    }
    const { call } = parsed;
    this.inflight++;
    this.updateFlow();
    this.handle(call, this.client)
      .catch((e: unknown) => {
        this.log.fault('call handler threw', e);
        return errorReply(call.xid, AcceptStat.SYSTEM_ERR);
      })
      .then((reply) => this.send(reply))
      .catch((e: unknown) => this.log.fault('sending reply failed', e))
      .finally(() => {
        // The call is answered and nothing holds views into its bytes any more.
        RecordDecoder.recycle(rec);
        this.inflight--;
        this.updateFlow();
      });
  }

  private send(chunks: Buffer[]): void {
    if (this.closed || this.sock.destroyed) return;
    const framed = frameRecord(chunks);
    this.sock.cork();
    for (const c of framed) this.sock.write(c);
    this.sock.uncork();
    this.updateFlow();
  }

  /** Stops reading while too many calls are running or the peer is not reading our replies. */
  private updateFlow(): void {
    if (this.closed) return;
    const busy = this.inflight >= MAX_INFLIGHT || this.sock.writableNeedDrain;
    if (busy && !this.readingPaused) {
      this.readingPaused = true;
      this.sock.pause();
    } else if (!busy && this.readingPaused) {
      this.readingPaused = false;
      this.sock.resume();
    }
  }
}
