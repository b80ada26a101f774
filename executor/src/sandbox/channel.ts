import type { Socket } from 'node:net';

/** A message from a language runner; see executor/runtime/PROTOCOL in the runner sources. */
export type RunnerMessage = { type: string; id?: string; [k: string]: unknown };

/**
 * Newline-delimited JSON over the runner's fd 3 socket. JSON.stringify never emits a raw
 * newline, so a newline always ends a message; partial lines are kept until the rest arrives.
 */
export class RunnerChannel {
  private buffered = '';
  private listener: ((msg: RunnerMessage) => void) | undefined;

  constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    // Errors surface as the sandbox's exit; the socket closing is expected when it dies.
    socket.on('error', () => undefined);
  }

  onMessage(listener: (msg: RunnerMessage) => void): void {
    this.listener = listener;
  }

  /** Sends one message: an object, or one already serialised (a JSON object without raw newlines). */
  send(msg: object | string): void {
    this.socket.write((typeof msg === 'string' ? msg : JSON.stringify(msg)) + '\n');
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    let start = 0;
    let nl = chunk.indexOf('\n');
    if (nl === -1) {
      this.buffered += chunk;
      return;
    }
    let line = this.buffered + chunk.slice(0, nl);
    this.buffered = '';
    for (;;) {
      this.dispatch(line);
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
      if (nl === -1) break;
      line = chunk.slice(start, nl);
    }
    this.buffered = chunk.slice(start);
  }

  private dispatch(line: string): void {
    if (!line) return;
    let msg: RunnerMessage;
    try {
      msg = JSON.parse(line) as RunnerMessage;
    } catch {
      // A runner that writes garbage on its control fd is broken; treat it as stderr noise.
      msg = { type: 'log', stream: 'stderr', data: line + '\n' };
    }
    this.listener?.(msg);
  }
}
