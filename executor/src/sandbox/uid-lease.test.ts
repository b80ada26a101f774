import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireUidLease, UID_BLOCK, UidRangeBusyError, type UidLease } from './uid-lease.js';

const dir = mkdtempSync(join(tmpdir(), 'kiln-uid-lease-'));
// Far above any range Kiln hands out, and random, so parallel test files never meet here.
const base = 3_000_000 + Math.floor(Math.random() * 100_000) * UID_BLOCK;
const leases: UidLease[] = [];
const take = async (first: number, count: number, onLost: (reason: string) => void = () => undefined): Promise<UidLease> => {
  const lease = await acquireUidLease(dir, first, count, onLost);
  leases.push(lease);
  return lease;
};
afterAll(() => {
  for (const l of leases) l.release();
  rmSync(dir, { recursive: true, force: true });
});
const lostWith = (): { onLost: (r: string) => void; lost: Promise<string> } => {
  let onLost: (r: string) => void = () => undefined;
  const lost = new Promise<string>((resolve) => (onLost = resolve));
  return { onLost, lost };
};

describe('the host uid lease', () => {
  it('refuses a range that overlaps a held one in any block, and allows a disjoint one', async () => {
    await take(base, 1500);
    await expect(acquireUidLease(dir, base + 1200, 10, () => undefined)).rejects.toBeInstanceOf(UidRangeBusyError);
    await expect(acquireUidLease(dir, base - UID_BLOCK, 1001, () => undefined)).rejects.toBeInstanceOf(UidRangeBusyError);
    await take(base + 2 * UID_BLOCK, 16);
  });

  it('is free again once released', async () => {
    const first = base + 10 * UID_BLOCK;
    const { onLost, lost } = lostWith();
    const lease = await take(first, 16, onLost);
    lease.release();
    // Released on purpose: not reported as lost. Retried until the holder has exited.
    for (let i = 0; ; i++) {
      try {
        await take(first, 16);
        break;
      } catch (err) {
        if (!(err instanceof UidRangeBusyError) || i > 100) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    expect(await Promise.race([lost, new Promise((r) => setTimeout(() => r('not lost'), 100))])).toBe('not lost');
  });

  it('dies with a SIGKILLed holder process, so a crashed executor leaves no stale lease', async () => {
    const first = base + 20 * UID_BLOCK;
    // A process that takes the lease the way the executor does, then waits to be killed.
    const script = `import(${JSON.stringify(new URL('../../dist/sandbox/uid-lease.js', import.meta.url).href)}).then(async (m) => {
      await m.acquireUidLease(${JSON.stringify(dir)}, ${first}, 16, () => {});
      process.stdout.write('held\\n');
      setInterval(() => {}, 1000);
    });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`the lease holder exited with ${code}`)));
    });
    await expect(acquireUidLease(dir, first, 16, () => undefined)).rejects.toBeInstanceOf(UidRangeBusyError);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    for (let i = 0; ; i++) {
      try {
        await take(first, 16);
        break;
      } catch (err) {
        if (!(err instanceof UidRangeBusyError) || i > 100) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });

  it('reports a lease whose holder was killed behind its back', async () => {
    const { onLost, lost } = lostWith();
    await take(base + 30 * UID_BLOCK, 16, onLost);
    const holder = spawn('pgrep', ['-f', `${dir}/${base + 30 * UID_BLOCK}.lock`], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pids = await new Promise<string>((resolve) => {
      let out = '';
      holder.stdout.on('data', (d: Buffer) => (out += d.toString()));
      holder.once('exit', () => resolve(out));
    });
    for (const pid of pids.trim().split('\n')) process.kill(Number(pid), 'SIGKILL');
    expect(await lost).toMatch(/uid lease holder/);
  });

  it('refuses a range some process already runs in, lease or not', async () => {
    const first = base + 40 * UID_BLOCK;
    const squatter = spawn('sleep', ['30'], { uid: first + 7, gid: first + 7, stdio: 'ignore' });
    try {
      await new Promise((r) => squatter.once('spawn', r));
      await expect(acquireUidLease(dir, first, 16, () => undefined)).rejects.toThrow(/runs as uid/);
      // The lease taken for the check was given back.
      squatter.kill('SIGKILL');
      await new Promise((r) => squatter.once('exit', r));
      await take(first, 16);
    } finally {
      squatter.kill('SIGKILL');
    }
  });
});
