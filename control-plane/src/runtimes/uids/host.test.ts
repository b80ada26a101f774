import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { killProcessesWithUids, waitForUidsUnused } from './host.js';

/** A uid no account or test uses (below the sandbox ranges, above system accounts). */
const UID = 64_999;

describe('waitForUidsUnused', () => {
  it('counts a live process with the uid, and not a zombie left unreaped', { timeout: 10_000 }, async () => {
    // The shell starts a child as UID, then becomes `sleep`, which never reaps it: while it
    // sleeps, the child is first alive (sleep 1), then a zombie with UID, as a SIGKILLed
    // executor's sandboxes are under an init that does not reap.
    const parent = spawn('sh', ['-c', `setpriv --reuid=${UID} --regid=${UID} --clear-groups sleep 1 & exec sleep 6`], { stdio: 'ignore' });
    try {
      expect(await waitForUidsUnused(UID, 1, 200)).toBe(false);
      const child = async (): Promise<string> => {
        const children = (await readFile(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').catch(() => '')).trim();
        return children ? await readFile(`/proc/${children.split(' ')[0]}/status`, 'utf8').catch(() => '') : '';
      };
      for (let i = 0; i < 60 && !/^State:\s+Z/m.test(await child()); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await child()).toMatch(/^State:\s+Z/m);
      expect(await waitForUidsUnused(UID, 1, 200)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

describe('killProcessesWithUids', () => {
  it('kills what runs with a uid of the range, and nothing else', { timeout: 10_000 }, async () => {
    const inRange = spawn('setpriv', [`--reuid=${UID}`, `--regid=${UID}`, '--clear-groups', 'sleep', '600'], { stdio: 'ignore' });
    const outside = spawn('setpriv', [`--reuid=${UID - 1}`, `--regid=${UID - 1}`, '--clear-groups', 'sleep', '600'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => inRange.on('exit', (_code, signal) => resolve(signal)));
    try {
      expect(await waitForUidsUnused(UID, 1, 200)).toBe(false);
      expect(await killProcessesWithUids(UID, 1)).toBe(1);
      expect(await exited).toBe('SIGKILL');
      expect(await waitForUidsUnused(UID, 1, 1000)).toBe(true);
      expect(outside.exitCode === null && outside.signalCode === null).toBe(true);
    } finally {
      inRange.kill('SIGKILL');
      outside.kill('SIGKILL');
    }
  });
});
