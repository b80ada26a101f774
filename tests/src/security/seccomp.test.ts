import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARCHES, DENIED } from '@kiln/executor/seccomp';
import { inSession, startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The seccomp filter, attacked from inside real sandboxes: a function handler (bwrap's filter)
 * and a session process (the loader before nsenter). Each denied call is made directly with
 * ctypes, with arguments chosen so that, where the kernel allows it to an unprivileged user,
 * the unfiltered call returns something other than EPERM (a keyring id, an fd, EFAULT, EBADF,
 * EINVAL...): EPERM then can only come from the filter.
 */
const PROBE = String.raw`
import ctypes, json, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
nr = json.loads(sys.argv[1])
buf = ctypes.create_string_buffer(256)
s = lambda t: ctypes.c_char_p(t)
L = ctypes.c_long
args = {
  'io_uring_setup': [1, 0], 'io_uring_enter': [-1, 0, 0, 0, 0, 0], 'io_uring_register': [-1, 0, 0, 0],
  'keyctl': [0, -3, 0], 'add_key': [0, 0, 0, 0, 0], 'request_key': [0, 0, 0, 0],
  'bpf': [5, 0, 0], 'perf_event_open': [0, 0, -1, -1, 0], 'userfaultfd': [1],
  'init_module': [0, 0, 0], 'finit_module': [-1, s(b''), 0], 'delete_module': [0, 0],
  'kexec_load': [0, 0, 0, 0], 'kexec_file_load': [-1, -1, 0, 0, 0],
  'unshare': [0x10000000], 'clone3': [0, 0],
  'mount': [0, 0, 0, 0, 0], 'umount2': [s(b'/'), 0], 'pivot_root': [s(b'/'), s(b'/')],
  'open_tree': [-100, s(b'/'), 0], 'move_mount': [-1, s(b''), -1, s(b''), 0], 'fsopen': [s(b'tmpfs'), 0],
  'fsconfig': [-1, 0, 0, 0, 0], 'fsmount': [-1, 0, 0], 'fspick': [-100, s(b'/'), 0], 'mount_setattr': [-1, 0, 0, 0, 0],
  'swapon': [0, 0], 'swapoff': [0], 'reboot': [0, 0, 0, 0], 'acct': [0], 'quotactl': [0, 0, 0, 0],
  'quotactl_fd': [-1, 0, 0, 0], 'syslog': [10, 0, 0], 'vhangup': [],
  'open_by_handle_at': [-1, 0, 0], 'name_to_handle_at': [-100, s(b'/'), buf, buf, 0], 'lookup_dcookie': [0, 0, 0],
  'fanotify_init': [0, 0], 'iopl': [3], 'ioperm': [0, 1, 1], 'modify_ldt': [0, 0, 0], 'uselib': [0],
  # CLONE_NEWUSER|CLONE_FS: EINVAL from an unfiltered kernel (the pair is invalid), so no child is made
  'clone': [0x10000000 | 0x200, 0, 0, 0, 0],
  # ADDR_NO_RANDOMIZE
  'personality': [0x0040000],
}
out = {}
for name, a in args.items():
  if name not in nr: continue
  r = libc.syscall(L(nr[name]), *[x if isinstance(x, (ctypes.c_char_p, ctypes.Array)) else L(x) for x in a])
  out[name] = 'ok' if r >= 0 else ctypes.get_errno()
status = open('/proc/self/status').read()
out['seccomp'] = [l.split()[1] for l in status.splitlines() if l.startswith('Seccomp:')][0]
print(json.dumps(out))
`;

const arch = ARCHES.find((a) => a.name === (process.arch === 'arm64' ? 'aarch64' : 'x86_64'));
const TABLE = JSON.stringify(arch?.nr ?? {});

function expectRefused(result: Record<string, string | number>): void {
  expect(result.seccomp).toBe('2');
  for (const name of Object.keys(arch?.nr ?? {})) {
    const want = name === 'clone3' ? 38 : 1; // ENOSYS, EPERM
    expect([name, result[name]]).toEqual([name, want]);
  }
  for (const name of Object.keys(DENIED)) if (arch?.nr[name] !== undefined) expect(result[name]).toBeDefined();
}

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 }, resources: { memoryMB: 256, maxProcesses: 128 } }, python: null, shell: null, provided: null } });
});
afterAll(async () => {
  await k?.stop();
});

const withSession = <T>(fn: (id: string) => Promise<T>): Promise<T> => inSession(k, fn);

const run = async (id: string, command: string, args: string[] = []) => {
  const res = await k.call('POST', `/api/v1/sessions/${id}/process/run`, { command, args, timeoutMs: 30_000 });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as { exitCode: number; stdout: string; stderr: string };
};

describe('seccomp: the kernel surface of a sandbox', () => {
  it('refuses every denied call in a function handler, its children and the sandbox\'s pid 1', async () => {
    const res = await k.call('POST', '/api/v1/executions', {
      language: 'nodejs',
      event: { probe: PROBE, table: TABLE },
      timeoutMs: 20_000,
      code: `const { execFileSync, spawnSync } = require('child_process');
        const fs = require('fs');
        exports.handler = async (e) => ({
          probe: JSON.parse(execFileSync('/usr/bin/python3', ['-c', e.probe, e.table]).toString()),
          self: /Seccomp:\\s+(\\d)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1],
          init: /Seccomp:\\s+(\\d)/.exec(fs.readFileSync('/proc/1/status', 'utf8'))[1],
          unshare: spawnSync('unshare', ['-Urm', 'true']).status,
        });`,
    });
    expect(res.body.status, JSON.stringify(res.body)).toBe('succeeded');
    const r = res.body.result;
    expectRefused(r.probe);
    expect(r.self).toBe('2');
    expect(r.init).toBe('2');
    expect(r.unshare).not.toBe(0);
  });

  it('refuses every denied call in a session process, and nested user namespaces', async () => {
    await withSession(async (id) => {
      const probe = await run(id, '/usr/bin/python3', ['-c', PROBE, TABLE]);
      expect(probe.exitCode, probe.stderr).toBe(0);
      expectRefused(JSON.parse(probe.stdout));
      const status = await run(id, 'grep', ['^Seccomp:', '/proc/self/status']);
      expect(status.stdout).toMatch(/^Seccomp:\s+2$/m);
      const unshare = await run(id, 'unshare', ['-Urm', 'true']);
      expect(unshare.exitCode).not.toBe(0);
      expect(unshare.stderr).toMatch(/Operation not permitted/);
    });
  });

  it('still runs node, python, bash, curl, pip and git in a session', async () => {
    await withSession(async (id) => {
      const script = [
        'set -e',
        'node -e "const { Worker } = require(\'worker_threads\'); require(\'child_process\').execFileSync(\'true\'); new Worker(\'1\', { eval: true }).on(\'exit\', () => console.log(\'node ok\'))"',
        'python3 -c "import threading, subprocess; t = threading.Thread(target=print, args=(\'python ok\',)); t.start(); t.join(); subprocess.run([\'true\'], check=True)"',
        'bash -c \'echo bash ok | cat\'',
        'curl --version | head -n1 | cut -d" " -f1',
        'pip --version | cut -d" " -f1',
        'cd /tmp && mkdir repo && cd repo && git init -q && git config user.email a@b && git config user.name a',
        'echo hi > f && git add f && git commit -qm first && git log --oneline | wc -l',
      ].join('\n');
      const res = await run(id, '/bin/bash', ['-c', script]);
      expect(res.exitCode, res.stderr).toBe(0);
      expect(res.stdout).toBe('node ok\npython ok\nbash ok\ncurl\npip\n1\n');
    });
  });
});
