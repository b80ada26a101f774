import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { killProcessesWithUids, waitForUidsUnused } from './host.js';

/** A uid no account or test uses (below the sandbox ranges, above system accounts). */
const UID = 64_999;

/** Waits until a live process runs with `uid` (a spawned setpriv has switched to it). */
async function appears(uid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!(await waitForUidsUnused(uid, 1, 0))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no process with uid ${uid} appeared`);
}

describe('waitForUidsUnused', () => {
  it('counts a live process with the uid, and not a zombie left unreaped', { timeout: 10_000 }, async () => {
    // The shell starts a child as UID, then becomes `sleep`, which never reaps it: while it
    // sleeps, the child is first alive (sleep 1), then a zombie with UID, as a SIGKILLed
    // executor's sandboxes are under an init that does not reap.
    const parent = spawn('sh', ['-c', `setpriv --reuid=${UID} --regid=${UID} --clear-groups sleep 1 & exec sleep 6`], { stdio: 'ignore' });
    try {
      await appears(UID);
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
    // Uids of their own: the zombie of the test above may still hold UID.
    const uid = UID - 10;
    const inRange = spawn('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'sleep', '600'], { stdio: 'ignore' });
    const outside = spawn('setpriv', [`--reuid=${uid - 1}`, `--regid=${uid - 1}`, '--clear-groups', 'sleep', '600'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => inRange.on('exit', (_code, signal) => resolve(signal)));
    try {
      await appears(uid);
      await appears(uid - 1);
      expect(await killProcessesWithUids(uid, 1)).toBe(1);
      expect(await exited).toBe('SIGKILL');
      expect(await waitForUidsUnused(uid, 1, 1000)).toBe(true);
      expect(outside.exitCode === null && outside.signalCode === null).toBe(true);
    } finally {
      inRange.kill('SIGKILL');
      outside.kill('SIGKILL');
    }
  });
});
