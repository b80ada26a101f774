import { spawn as spawnPty, type IPty } from 'node-pty';
import { HOST_ENV, sandboxArgv } from '../process/command.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import { InvalidArgumentError } from '../session/errors.js';

const MAX_DIMENSION = 1000;

function checkSize(cols: number, rows: number): void {
  if (cols < 1 || rows < 1 || cols > MAX_DIMENSION || rows > MAX_DIMENSION) {
    throw new InvalidArgumentError(`terminal size must be 1..${MAX_DIMENSION} columns and rows; got ${cols}x${rows}`, { cols, rows });
  }
}

/**
 * A login shell on a pseudo-terminal inside the sandbox, as the sandbox user. The pty lives on
 * the host (node-pty) and the shell reaches it through nsenter; the shell's session and
 * controlling terminal are its own, so job control works.
 */
export function openTerminal(sandbox: Sandbox, cols: number, rows: number, env: Record<string, string>): IPty {
  checkSize(cols, rows);
  const [file, ...args] = sandboxArgv(sandbox, ['/bin/bash', '-l'], '/workspace', { TERM: 'xterm-256color', SHELL: '/bin/bash', ...env });
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
