import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SandboxCgroup } from './cgroup.js';
import { readCgroupUsage } from './cgroup-usage.js';

/**
 * The file formats of both cgroup versions, laid out as the kernel does (this host runs v1, so
 * the v2 reader is checked against the files it would read; the e2e test reads a real v1 cgroup).
 */
describe('readCgroupUsage', () => {
  const root = mkdtempSync(join(tmpdir(), 'cg-usage-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const cgroupOf = (dirs: Record<string, Record<string, string>>): SandboxCgroup => {
    const files: string[] = [];
    for (const [dir, contents] of Object.entries(dirs)) {
      mkdirSync(join(root, dir), { recursive: true });
      for (const [name, text] of Object.entries(contents)) writeFileSync(join(root, dir, name), text);
      files.push(join(root, dir, 'cgroup.procs'));
    }
    return { procsFiles: files } as unknown as SandboxCgroup;
  };

  it('reads cgroup v2\'s cpu.stat, memory.current, memory.max, cpu.max and pids.current', async () => {
    const cg = cgroupOf({ v2: { 'cpu.stat': 'usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\n', 'memory.current': '4096000\n', 'memory.max': '536870912\n', 'memory.peak': '5000000\n', 'cpu.max': '50000 100000\n', 'pids.current': '3\n' } });
    expect(await readCgroupUsage(cg, 'v2')).toEqual({ cpuUsageUs: 123456, memoryBytes: 4096000, memoryLimitBytes: 536870912, memoryPeakBytes: 5000000, cpuLimit: 0.5, tasks: 3 });
  });

  it('leaves out v2\'s unbounded limits ("max")', async () => {
    const cg = cgroupOf({ v2max: { 'cpu.stat': 'usage_usec 1\n', 'memory.current': '10\n', 'memory.max': 'max\n', 'cpu.max': 'max 100000\n' } });
    expect(await readCgroupUsage(cg, 'v2')).toEqual({ cpuUsageUs: 1, memoryBytes: 10 });
  });

  it('reads cgroup v1 from one directory per hierarchy, cpuacct in ns', async () => {
    const cg = cgroupOf({
      'memory/x': { 'memory.usage_in_bytes': '2048\n', 'memory.limit_in_bytes': '1048576\n', 'memory.max_usage_in_bytes': '4096\n' },
      'pids/x': { 'pids.current': '7\n' },
      'cpu/x': { 'cpu.cfs_quota_us': '200000\n', 'cpu.cfs_period_us': '100000\n' },
      'cpuacct/x': { 'cpuacct.usage': '5000000\n' },
    });
    expect(await readCgroupUsage(cg, 'v1')).toEqual({ cpuUsageUs: 5000, memoryBytes: 2048, memoryLimitBytes: 1048576, memoryPeakBytes: 4096, cpuLimit: 2, tasks: 7 });
  });

  it('leaves out what v1 lacks: no cpuacct, an unlimited memory, no quota (-1)', async () => {
    const cg = cgroupOf({ 'memory/y': { 'memory.usage_in_bytes': '1\n', 'memory.limit_in_bytes': '9223372036854771712\n' }, 'cpu/y': { 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '100000\n' } });
    expect(await readCgroupUsage(cg, 'v1')).toEqual({ memoryBytes: 1 });
  });
});
