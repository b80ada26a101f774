import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sandboxArgv } from '../process/command.js';
import { devptsStep } from './devpts.js';
import { SandboxManager } from './manager.js';

// The devpts boot step against real bwrap, in both ways an executor runs: as root with a host
// uid per slot (the local platform), and as a non-root user that owns the sandbox's user
// namespace (user kiln in a container), which is why the step does not use nsenter + mount(8).

const LIMITS = { memoryMB: 256, diskMB: 256, maxProcesses: 256, maxOpenFiles: 1024, cpus: 1 };
const PROBE = 'id -u; script -qc tty /dev/null; ls -A /dev/pts | tr "\\n" " "; echo; grep " /dev/pts " /proc/self/mountinfo';
const dirs: string[] = [];

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-devpts-'));
  chmodSync(dir, 0o755); // sandbox uids traverse it to their workspace
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function expectOwnDevpts(out: string): void {
  const [uid, tty, pts, mount] = out.split('\n');
  expect(uid).toBe('1000');
  expect(tty?.trim()).toBe('/dev/pts/0');
  expect(pts).toBe('ptmx ');
  expect(mount).toMatch(/ \/dev\/pts rw,nosuid,noexec,\S* - devpts devpts rw,mode=620,ptmxmode=666,max=64$/);
}

describe('devpts boot step', () => {
  it('mounts a private instance for a root executor (sandbox as its own host uid)', async () => {
    const uidBase = 62_000 + (process.pid % 1000) * 4;
    const manager = new SandboxManager({ dataDir: dataDir(), maxSandboxes: 1, runners: ['nodejs'], uidBase, bwrapPath: '/usr/bin/bwrap', bootSteps: [devptsStep()] });
    await manager.init();
    const sandbox = await manager.create('devpts-root', 'nodejs', LIMITS, false);
    try {
      expect(sandbox.spec.hostUid).toBe(uidBase);
      const [cmd, ...args] = sandboxArgv(sandbox, ['/bin/sh', '-c', PROBE], '/workspace', {});
      expectOwnDevpts(execFileSync(cmd as string, args, { encoding: 'utf8' }));
    } finally {
      await manager.destroy('devpts-root');
    }
  });

  it('mounts a private instance for a non-root executor that owns the user namespace', () => {
    // A whole executor-side process as an unprivileged user: it starts bwrap as itself and
    // runs the step as itself, as `kiln` does in a container.
    const uid = 63_000 + (process.pid % 1000);
    const dir = dataDir();
    chownSync(dir, uid, uid);
    // The child runs the compiled executor (the test itself may run from src/ through vite).
    const dist = new URL('.', import.meta.url).href.replace('/executor/src/', '/executor/dist/');
    const script = join(dir, 'executor.mjs');
    writeFileSync(
      script,
      `import { SandboxManager } from '${dist}manager.js';
import { devptsStep } from '${dist}devpts.js';
import { sandboxArgv } from '${dist}../process/command.js';
import { execFileSync } from 'node:child_process';
const m = new SandboxManager({ dataDir: ${JSON.stringify(join(dir, 'data'))}, maxSandboxes: 1, runners: ['nodejs'], uidBase: 0, bwrapPath: '/usr/bin/bwrap', bootSteps: [devptsStep()] });
await m.init();
const s = await m.create('devpts-user', 'nodejs', ${JSON.stringify(LIMITS)}, false);
try {
  const [cmd, ...args] = sandboxArgv(s, ['/bin/sh', '-c', ${JSON.stringify(PROBE)}], '/workspace', {});
  process.stdout.write(execFileSync(cmd, args, { encoding: 'utf8' }));
} finally {
  await m.destroy('devpts-user');
}
`,
    );
    const out = execFileSync('/usr/bin/setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, script], { encoding: 'utf8', timeout: 30_000 });
    expectOwnDevpts(out);
  });
});
