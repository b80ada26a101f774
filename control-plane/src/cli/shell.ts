import { WebSocket } from 'ws';
import type { WebSocketLike } from '@kiln-sandbox/sdk';
import { Kiln } from '@kiln-sandbox/sdk/node';
import { resolveConfig } from './config.js';

/** Ctrl-D: what the terminal's line discipline reads as end of input on an empty line. */
const EOT = '\x04';
const EOT_EVERY_MS = 1000;

/**
 * `kiln sessions shell <id>`: the session's terminal (the PTY WebSocket) in this one. With a TTY
 * on stdin, stdin goes raw, so every key (Ctrl-C, Ctrl-D, arrows) reaches the remote shell and
 * the remote terminal does the echoing and line editing; the local size follows SIGWINCH (stdout's
 * `resize`). Piped stdin is written as it comes, then Ctrl-D when it ends, which is the
 * remote shell's end of input, so `echo 'echo hi; exit 3' | kiln sessions shell ID` works. Resolves
 * with the remote shell's exit code.
 */
export async function shell(id: string): Promise<number> {
  // Node 20 has no global WebSocket: ws's. The SDK authenticates it with a one-use ticket.
  const kiln = new Kiln({ ...resolveConfig(), WebSocket: WebSocket as unknown as WebSocketLike });
  const session = await kiln.sessions.connect(id);
  const stdin = process.stdin;
  const stdout = process.stdout;
  const term = await session.pty.create({
    // A terminal that reports no size (0x0, e.g. a fresh pty) gets the usual 80x24.
    cols: (stdout.isTTY && stdout.columns) || 80,
    rows: (stdout.isTTY && stdout.rows) || 24,
    onData: (d) => stdout.write(d),
  });
  const onInput = (d: Buffer): void => term.write(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  // Piped input's end is a Ctrl-D, repeated each second until the shell ends: one that reaches
  // the remote terminal while no readline is reading (bash before its first prompt, or running a
  // command) becomes a NUL at the next prompt instead of the end of input, and is lost.
  let eots: NodeJS.Timeout | undefined;
  const onEnd = (): void => {
    term.write(EOT);
    eots = setInterval(() => term.write(EOT), EOT_EVERY_MS).unref();
  };
  const onResize = (): void => term.resize(stdout.columns || 80, stdout.rows || 24);
  const raw = stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  if (stdout.isTTY) stdout.on('resize', onResize);
  stdin.on('data', onInput);
  stdin.on('end', onEnd);
  stdin.resume();
  try {
    return await term.exited;
  } finally {
    clearInterval(eots);
    stdin.off('data', onInput);
    stdin.off('end', onEnd);
    stdout.off('resize', onResize);
    if (raw) stdin.setRawMode(false);
    // Nothing else keeps the process: stdin must stop holding the event loop open.
    stdin.pause();
    stdin.unref?.();
  }
}
