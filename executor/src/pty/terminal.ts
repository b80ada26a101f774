import { spawn as spawnPty, type IPty } from 'node-pty';
import { HOST_ENV, sandboxArgv } from '../process/command.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { InvalidArgumentError } from '../errors.js';

const MAX_DIMENSION = 1000;

function checkSize(cols: number, rows: number): void {
  if (cols < 1 || rows < 1 || cols > MAX_DIMENSION || rows > MAX_DIMENSION) {
    throw new InvalidArgumentError(`terminal size must be 1..${MAX_DIMENSION} columns and rows; got ${cols}x${rows}`, { cols, rows });
  }
}

/**
 * What the terminal runs inside the sandbox: util-linux `script` (bsdutils, Essential in Debian)
 * opens a pty from the sandbox's own devpts (/dev/ptmx → /dev/pts/ptmx, see sandbox/devpts.ts),
 * starts the login shell on it as a new session with that pty as its controlling terminal, and
 * relays bytes between it and the host pty. So `tty` names /dev/pts/N inside, programs that
 * reopen their terminal (/dev/tty, ttyname, sudo-like prompts, tmux attach) find it, and job
 * control works on a terminal the sandbox owns. The host pty is put in raw mode by `script`;
 * a resize of it sends SIGWINCH to its foreground group, which is `script`'s, and `script`
 * copies the new size to the inner pty. `-e` returns the shell's exit status (128+n for a
 * signal); `-q` prints no banner; the typescript goes to /dev/null.
 *
 * `setpriv --pdeathsig KILL`: `script` blocks SIGHUP and, when its input hangs up, only sends
 * EOF to a shell in canonical mode (readline is not), so a client that hangs up would leave the
 * relay and the shell running. The agent kills the launcher (nsenter, the parent of `script`)
 * when the client goes; the kernel then kills `script`, its pty closes, and the shell gets
 * SIGHUP and passes it on to its jobs, as on any terminal that hangs up.
 */
export const TERMINAL_COMMAND = terminalCommand('exec /bin/bash -l');

/** TERMINAL_COMMAND for another command line (a shell string run by `script`'s `$SHELL -c`). */
export function terminalCommand(shellLine: string): string[] {
  return ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--', '/usr/bin/script', '-q', '-e', '-c', shellLine, '/dev/null'];
}

/** Quotes one word for a POSIX shell. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * A login shell on a pseudo-terminal inside the sandbox, as the sandbox user. node-pty owns a
 * host pty for the launcher (nsenter), and `script` inside owns the sandbox pty the shell uses
 * (TERMINAL_COMMAND).
 */
export function openTerminal(sandbox: Sandbox, cols: number, rows: number, env: Record<string, string>, command = TERMINAL_COMMAND, cwd = '/workspace'): IPty {
  checkSize(cols, rows);
  const [file, ...args] = sandboxArgv(sandbox, command, cwd, { TERM: 'xterm-256color', SHELL: '/bin/bash', ...env });
  return spawnPty(file as string, args, {
    name: 'xterm-256color',
    cols,
    rows,
    cwd: '/',
    env: HOST_ENV,
    encoding: null,
  });
}

export function resizeTerminal(pty: IPty, cols: number, rows: number): void {
  checkSize(cols, rows);
  pty.resize(cols, rows);
}
