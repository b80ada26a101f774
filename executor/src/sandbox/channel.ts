import type { Socket } from 'node:net';

/** A message from a language runner; see executor/runtime/PROTOCOL in the runner sources. */
export type RunnerMessage = { type: string; id?: string; [k: string]: unknown };

/**
 * Longest line a runner may send: a 6 MB result base64-encoded (8 MB) with room to spare. The
 * channel is written by code inside the sandbox, so without a bound one endless line would grow
 * the executor's buffer until the process died.
 */
export const MAX_LINE_CHARS = 12 * 1024 * 1024;

/**
 * Newline-delimited JSON over the runner's fd 3 socket. JSON.stringify never emits a raw
 * newline, so a newline always ends a message; partial lines are kept until the rest arrives.
 * Everything on it comes from inside the sandbox (PROTOCOL.md, "Trust"): a line over
 * MAX_LINE_CHARS is a violation, reported once and the channel closed; lines that are not JSON
 * objects with a string `type` count as stderr noise.
 */
export class RunnerChannel {
  private buffered = '';
  private listener: ((msg: RunnerMessage) => void) | undefined;
  private violation: ((reason: string) => void) | undefined;
  private broken = false;

  constructor(
    private readonly socket: Socket,
    private readonly maxLineChars = MAX_LINE_CHARS,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    // Errors surface as the sandbox's exit; the socket closing is expected when it dies.
    socket.on('error', () => undefined);
  }

  onMessage(listener: (msg: RunnerMessage) => void): void {
    this.listener = listener;
  }

  /** Called once when the runner breaks the protocol's bounds; the owner kills the sandbox. */
  onViolation(listener: (reason: string) => void): void {
    this.violation = listener;
  }

  /** Sends one message: an object, or one already serialised (a JSON object without raw newlines). */
  send(msg: object | string): void {
    this.socket.write((typeof msg === 'string' ? msg : JSON.stringify(msg)) + '\n');
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    if (this.broken) return;
    let start = 0;
    let nl = chunk.indexOf('\n');
    if (nl === -1) {
      this.buffered += chunk;
      if (this.buffered.length > this.maxLineChars) this.break();
      return;
    }
    let line = this.buffered + chunk.slice(0, nl);
    this.buffered = '';
    for (;;) {
      if (line.length > this.maxLineChars) return this.break();
      this.dispatch(line);
      start = nl + 1;
      nl = chunk.indexOf('\n', start);
      if (nl === -1) break;
      line = chunk.slice(start, nl);
    }
    this.buffered = chunk.slice(start);
    if (this.buffered.length > this.maxLineChars) this.break();
  }

  private break(): void {
    this.broken = true;
    this.buffered = '';
    this.socket.destroy();
    this.violation?.(`the runner sent a message longer than ${this.maxLineChars} characters on its channel`);
  }

  private dispatch(line: string): void {
    if (!line) return;
    let msg: RunnerMessage | undefined = resultWithText(line);
    if (!msg)
      try {
        const parsed = JSON.parse(line) as unknown;
        if (isMessage(parsed)) msg = parsed;
      } catch {
        // Not JSON: handled below.
      }
    // A runner that writes garbage on its control fd is broken; treat it as stderr noise.
    this.listener?.(msg ?? { type: 'log', stream: 'stderr', data: line + '\n' });
  }
}

function isMessage(value: unknown): value is RunnerMessage {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && typeof (value as { type?: unknown }).type === 'string';
}

const RESULT_LINE = '{"type":"result",';
const RESULT_MEMBER = ',"result":';

/**
 * A `result` line whose last member is `"result":<JSON>`, as every runner writes it
 * (PROTOCOL.md), with that JSON kept as the text the runner sent (`resultJson`): the handler's
 * bytes pass on unchanged (`2**64+1` from Python, `1.50`, its spacing), and the result is
 * parsed once, to check it, instead of parsed and serialised again. The line is split at the
 * first `,"result":`, which can only be a key (its quote follows a comma, so it opens a
 * string): if what precedes it closes as an object, the key is a top-level member, and if
 * what follows up to the final `}` is one JSON value, the line is exactly that object with
 * `result` last. Any other line (errors, `raw`, another order) is parsed whole as before.
 */
function resultWithText(line: string): RunnerMessage | undefined {
  if (!line.startsWith(RESULT_LINE) || !line.endsWith('}')) return undefined;
  const at = line.indexOf(RESULT_MEMBER);
  if (at === -1) return undefined;
  const text = line.slice(at + RESULT_MEMBER.length, -1);
  try {
    const head = JSON.parse(`${line.slice(0, at)}}`) as unknown;
    JSON.parse(text); // throws unless `text` is exactly one JSON value
    return isMessage(head) ? { ...head, resultJson: text } : undefined;
  } catch {
    return undefined;
  }
}
