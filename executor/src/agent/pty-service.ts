import type { PtyInput, PtyServer } from '@kiln/proto/executor/pty';
import { openTerminal, resizeTerminal } from '../pty/terminal.js';
import type { SandboxManager } from '../sandbox/manager.js';
import type { Rpc } from './rpc.js';

/**
 * The Pty service: an interactive login shell inside a session's sandbox. The first input
 * opens it; the client hanging up kills the shell and everything started in the terminal.
 */
export function ptyService(rpc: Rpc, sandboxes: SandboxManager): PtyServer {
  return {
    open: rpc.duplex((call, fail) => {
      let term: ReturnType<typeof openTerminal> | undefined;
      let done = false;
      const finish = (err?: unknown): void => {
        if (done) return;
        done = true;
        term?.kill('SIGKILL');
        if (err) fail(err);
        else call.end();
      };
      call.on('data', (msg: PtyInput) => {
        try {
          if (!term) {
            const t = openTerminal(sandboxes.get(msg.sandboxId), msg.cols || 80, msg.rows || 24, msg.env);
            term = t;
            t.onData((d: string | Buffer) => {
              if (!done) call.write({ data: typeof d === 'string' ? Buffer.from(d) : d, exited: false, exitCode: 0 });
            });
            t.onExit(({ exitCode }) => {
              if (done) return;
              call.write({ data: Buffer.alloc(0), exited: true, exitCode });
              done = true;
              call.end();
            });
          } else if (msg.cols && msg.rows) resizeTerminal(term, msg.cols, msg.rows);
          if (msg.data.length) term.write(Buffer.from(msg.data));
        } catch (err) {
          finish(err);
        }
      });
      call.on('end', () => finish());
      call.on('cancelled', () => finish());
      // The call's own error (the client reset it) ends the terminal; there is no one to tell.
      call.on('error', () => finish());
    }),
  };
}
