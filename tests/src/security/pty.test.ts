import { statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';

// Terminals inside a sandbox (issue 15, point 7). Every sandbox has a devpts instance of its own:
// its terminal, `script`, Python's pty module and tmux get ptys from it, it shows none of the
// host's or another sandbox's ptys, and a sandbox cannot take more than its share of the
// kernel's pty budget (kernel.pty.max is one pool for the whole host).

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const withSession = <T>(fn: (id: string) => Promise<T>): Promise<T> => inSession(k, fn);

const run = (id: string, command: string, args: string[] = []) => k.call('POST', `/api/v1/sessions/${id}/process/run`, { command, args, timeoutMs: 20_000 });

/** A session terminal over the PTY WebSocket: what it printed, and ways to drive it. */
interface Terminal {
  send(text: string): void;
  resize(cols: number, rows: number): void;
  /** Waits until the output matches, and returns the match. */
  waitFor(re: RegExp): Promise<RegExpMatchArray>;
  /** Resolves with the exit message once the shell ended and the socket closed. */
  exited: Promise<{ type: string; code: number } | undefined>;
  close(): void;
}

async function openTerminal(id: string, cols: number, rows: number): Promise<Terminal> {
  const ws = new WebSocket(`${k.url.replace('http', 'ws')}/api/v1/sessions/${id}/pty?cols=${cols}&rows=${rows}`);
  let screen = '';
  let exit: { type: string; code: number } | undefined;
  const exited = new Promise<typeof exit>((resolve) => ws.on('close', () => resolve(exit)));
  ws.on('message', (data, isBinary) => {
    if (isBinary) screen += (data as Buffer).toString();
    else {
      const msg = JSON.parse((data as Buffer).toString());
      if (msg.type === 'exit') exit = msg;
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.on('open', () => resolve());
    ws.on('error', reject);
  });
  return {
    send: (text) => ws.send(Buffer.from(text)),
    resize: (c, r) => ws.send(JSON.stringify({ type: 'resize', cols: c, rows: r })),
    async waitFor(re) {
      for (let i = 0; i < 200; i++) {
        const m = screen.match(re);
        if (m) return m;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`terminal never printed ${re}; screen so far:\n${screen.slice(-2000)}`);
    },
    exited,
    close: () => ws.close(),
  };
}

describe('terminals in a sandbox', () => {
  it("a session terminal is a pty of the sandbox's own devpts, and shows no other pty", async () => {
    await withSession(async (a) => {
      await withSession(async (b) => {
        const ta = await openTerminal(a, 100, 30);
        const tb = await openTerminal(b, 100, 30);
        try {
          // Markers are printed by the shell from pieces, so the echoed command line never matches.
          const probe = 'echo "T""TY=$(tty) P""TS=$(ls -A /dev/pts | tr "\\n" ,) D""EV=$(stat -c %d /dev/pts)"\n';
          ta.send(probe);
          tb.send(probe);
          const re = /TTY=(\S+) PTS=(\S*) DEV=(\d+)/;
          const [, ttyA, ptsA, devA] = await ta.waitFor(re);
          const [, ttyB, ptsB, devB] = await tb.waitFor(re);
          // Each sandbox numbers its ptys from 0: two private instances, not one shared one.
          expect(ttyA).toBe('/dev/pts/0');
          expect(ttyB).toBe('/dev/pts/0');
          // Only its own terminal and the ptmx node: none of the host's ptys (the executor's
          // own terminals sit there) and none of the other session's.
          expect(ptsA).toBe('0,ptmx,');
          expect(ptsB).toBe('0,ptmx,');
          expect(Number(devA)).not.toBe(statSync('/dev/pts').dev);
          expect(devA).not.toBe(devB);
        } finally {
          ta.close();
          tb.close();
        }
      });
    });
  });

  it('job control, Ctrl-C, resize and the exit code work through the sandbox pty', async () => {
    await withSession(async (id) => {
      const t = await openTerminal(id, 100, 30);
      try {
        t.send('stty size\n');
        await t.waitFor(/^30 100\r?$/m);
        t.resize(120, 40);
        t.send('stty size\n');
        await t.waitFor(/^40 120\r?$/m);
        // Ctrl-C reaches the foreground job only: the shell survives and reports 130.
        t.send('sleep 30\n');
        await new Promise((r) => setTimeout(r, 300));
        t.send('\x03');
        t.send('echo "R""C=$?"\n');
        await t.waitFor(/RC=130/);
        // Ctrl-Z stops it; the shell has job control (a controlling terminal of its own).
        t.send('sleep 31\n');
        await new Promise((r) => setTimeout(r, 300));
        t.send('\x1a');
        await t.waitFor(/Stopped\s+sleep 31/);
        t.send('fg\n');
        await new Promise((r) => setTimeout(r, 300));
        t.send('\x03');
        t.send('echo "J""OBS=$(jobs | wc -l)"\n');
        await t.waitFor(/JOBS=0/);
        t.send('exit 3\n');
        expect(await t.exited).toEqual({ type: 'exit', code: 3 });
      } finally {
        t.close();
      }
    });
  });

  it('a shell killed by a signal ends the terminal with 128 + the signal number', async () => {
    await withSession(async (id) => {
      const t = await openTerminal(id, 80, 24);
      t.send('kill -KILL $$\n');
      expect(await t.exited).toEqual({ type: 'exit', code: 137 });
    });
  });

  it('a terminal the client hangs up on leaves no shell or relay behind in the sandbox', async () => {
    await withSession(async (id) => {
      const t = await openTerminal(id, 80, 24);
      t.send('sleep 1234 & echo "U""P"\n');
      await t.waitFor(/^UP\r?$/m);
      t.close();
      await t.exited;
      let left = '';
      for (let i = 0; i < 50; i++) {
        left = (await run(id, 'ps', ['-e', '-o', 'comm=,args='])).body.stdout as string;
        if (!/^(script|bash|sleep) /m.test(left)) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(left).not.toMatch(/^(script|bash|sleep) /m);
    });
  });

  it('session processes can open ptys: python pty.spawn, script, tmux', async () => {
    await withSession(async (id) => {
      const py = await run(id, 'python3', ['-c', 'import pty; pty.spawn(["/bin/true"])']);
      expect(py.body, JSON.stringify(py.body)).toMatchObject({ exitCode: 0 });
      const script = await run(id, 'script', ['-qc', 'tty', '/dev/null']);
      expect(script.body, JSON.stringify(script.body)).toMatchObject({ exitCode: 0 });
      expect(script.body.stdout).toMatch(/^\/dev\/pts\/\d+\r?\n$/);
      const tmux = await run(id, 'sh', ['-c', 'tmux -S /tmp/t new-session -d "sleep 5" && tmux -S /tmp/t list-sessions -F "#{session_name}:#{pane_tty}"; tmux -S /tmp/t kill-server']);
      expect(tmux.body, JSON.stringify(tmux.body)).toMatchObject({ exitCode: 0 });
      expect(tmux.body.stdout).toMatch(/^0:\/dev\/pts\/\d+\n$/);
    });
  });

  it("a sandbox cannot exhaust the host's ptys: its devpts instance stops at 64", async () => {
    await withSession(async (id) => {
      const hog = 'import os\nfds = []\ntry:\n    while len(fds) < 500: fds.append(os.openpty())\nexcept OSError as e:\n    print(len(fds), e.errno)\n';
      const res = await run(id, 'python3', ['-c', hog]);
      expect(res.body, JSON.stringify(res.body)).toMatchObject({ exitCode: 0 });
      // ENOSPC from devpts' max=64, long before the host-wide kernel.pty.max.
      expect(res.body.stdout).toBe('64 28\n');
    });
  });
});
