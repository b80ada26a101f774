import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { applyCpuPolicy, threadPolicies } from './cpu-policy.js';

/** A real node process with V8's threads; on a line on stdin it starts a worker thread. */
const CHILD = `
const { Worker } = require('node:worker_threads');
process.stdin.once('data', () => new Worker('setInterval(() => {}, 1000)', { eval: true }).once('online', () => console.log('online')));
setInterval(() => {}, 1000);
console.log('ready');`;

let child: ReturnType<typeof spawn> | undefined;
afterEach(() => {
  child?.kill('SIGKILL');
  child = undefined;
});

/** Resolves when the child prints `want` (a listener, not an iterator: that would close stdout). */
function line(stream: NodeJS.ReadableStream, want: string): Promise<void> {
  return new Promise((resolve) => {
    const onData = (chunk: string): void => {
      if (!chunk.includes(want)) return;
      stream.off('data', onData);
      resolve();
    };
    stream.on('data', onData);
  });
}

describe('applyCpuPolicy', () => {
  it('moves every thread of a process to SCHED_BATCH and back; threads started later inherit it', async () => {
    child = spawn(process.execPath, ['-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    const stdout = child.stdout!.setEncoding('utf8');
    await line(stdout, 'ready');
    const pid = child.pid!;
    const before = threadPolicies(pid);
    expect(before.length).toBeGreaterThan(1);
    expect(new Set(before)).toEqual(new Set(['normal']));

    expect(applyCpuPolicy('batch', pid)).toBe(true);
    expect(new Set(threadPolicies(pid))).toEqual(new Set(['batch']));

    child.stdin!.write('go\n');
    await line(stdout, 'online');
    const after = threadPolicies(pid);
    expect(after.length).toBeGreaterThan(before.length);
    expect(new Set(after)).toEqual(new Set(['batch']));

    expect(applyCpuPolicy('normal', pid)).toBe(true);
    expect(new Set(threadPolicies(pid))).toEqual(new Set(['normal']));
  });

  it('keeps a class an operator chose (chrt --idle), and says so', async () => {
    child = spawn('chrt', ['--idle', '0', process.execPath, '-e', CHILD], { stdio: ['pipe', 'pipe', 'inherit'] });
    await line(child.stdout!.setEncoding('utf8'), 'ready');
    const pid = Number(child.pid);
    expect(applyCpuPolicy('batch', pid)).toBe(false);
    expect(new Set(threadPolicies(pid))).toEqual(new Set(['other']));
  });

  it('returns false for a process that is gone, instead of throwing', async () => {
    child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await once(child, 'exit');
    expect(applyCpuPolicy('batch', pid)).toBe(false);
  });
});
