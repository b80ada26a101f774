import { KilnError, StreamError } from '../errors.js';
import type { RequestOptions, Transport } from '../http.js';

export interface PtyOptions extends RequestOptions {
  /** Terminal width in columns (default 80). */
  cols?: number;
  /** Terminal height in rows (default 24). */
  rows?: number;
  /** Terminal output as it arrives. */
  onData: (data: Uint8Array) => void;
}

/** An open terminal: input, resize, and its end. */
export class PtyHandle {
  /** Resolves with the shell's exit code when the terminal ends. */
  readonly exited: Promise<number>;
  private readonly encoder = new TextEncoder();

  constructor(private readonly ws: WebSocket) {
    this.exited = new Promise<number>((resolve, reject) => {
      let code: number | undefined;
      ws.addEventListener('message', (ev: MessageEvent) => {
        // Text frames are control messages; {"type":"exit","code":N} comes before the close.
        if (typeof ev.data === 'string') {
          const msg = JSON.parse(ev.data) as { type?: string; code?: number };
          if (msg.type === 'exit') code = msg.code ?? 0;
        }
      });
      ws.addEventListener('close', () => (code === undefined ? reject(new StreamError('PtyClosed', 'the terminal closed without an exit code')) : resolve(code)));
    });
    // Nobody may await `exited` (a caller that only kills the terminal): not an unhandled rejection.
    this.exited.catch(() => undefined);
  }

  /** Sends keystrokes or bytes to the terminal. */
  write(data: string | Uint8Array): void {
    this.ws.send(typeof data === 'string' ? this.encoder.encode(data) : data);
  }

  /** Changes the terminal's size. */
  resize(cols: number, rows: number): void {
    this.ws.send(JSON.stringify({ type: 'resize', cols, rows }));
  }

  /** Closes the terminal (its processes get SIGHUP). */
  close(): void {
    this.ws.close();
  }
}

/** `session.pty`: interactive terminals over Kiln's PTY WebSocket. */
export class Pty {
  constructor(
    private readonly http: Transport,
    private readonly sessionId: string,
  ) {}

  /** Opens a terminal running the template's login shell. */
  async create(opts: PtyOptions): Promise<PtyHandle> {
    const WS = this.http.WebSocket;
    if (!WS) throw new KilnError('WebSocketUnavailable', 'this runtime has no WebSocket: pass { WebSocket } (e.g. from the ws package on Node 20) to new Kiln()');
    const path = `/api/v1/sessions/${encodeURIComponent(this.sessionId)}/pty`;
    const url = new URL(this.http.href(path, { cols: opts.cols ?? 80, rows: opts.rows ?? 24 }));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    // Browsers cannot set headers on a WebSocket, and a key in the URL would land in logs (Kiln
    // refuses it). So the key asks for a one-use ticket in a header, and the WebSocket offers it
    // as a subprotocol: one path for browsers, Node 22's WebSocket and ws alike.
    const protocols = ['kiln.pty'];
    if (this.http.apiKey) {
      const { ticket } = await this.http.json<{ ticket: string }>('POST', `${path}-ticket`, opts.signal ? { signal: opts.signal } : {});
      protocols.push(`kiln.ticket.${ticket}`);
    }
    const ws = new WS(url.toString(), protocols);
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('message', (ev: MessageEvent) => {
      if (typeof ev.data !== 'string') opts.onData(new Uint8Array(ev.data as ArrayBuffer));
    });
    await new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        ws.close();
        reject(opts.signal?.reason as Error);
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      ws.addEventListener('open', () => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      ws.addEventListener('error', () => reject(new StreamError('PtyRefused', `the terminal of session ${this.sessionId} could not be opened (unknown session, bad key, or no sessions scope)`)));
    });
    return new PtyHandle(ws);
  }
}
