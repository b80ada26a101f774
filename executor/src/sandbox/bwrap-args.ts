import { existsSync } from 'node:fs';
import type { SandboxSpec } from './spec.js';
import { SANDBOX_GID, SANDBOX_UID } from './spec.js';

import { CA_FILES, SANDBOX_CA_BUNDLE, SANDBOX_CA_CERT } from '../egress/ca-env.js';

/** Host files from /etc a sandbox may read: TLS roots, time zones, the dynamic loader cache. */
const HOST_ETC = ['/etc/ssl', '/etc/ca-certificates', '/etc/localtime', '/etc/ld.so.cache', '/etc/alternatives', '/etc/nsswitch.conf'];
const SYNTHETIC_ETC = ['passwd', 'group', 'hosts'];

/** bwrap's --info-fd: it writes the sandbox's pid there once the namespaces exist. */
export const INFO_FD = 4;
/** bwrap's --block-fd: it waits for a byte there before executing anything in the sandbox. */
export const BLOCK_FD = 5;

/** The command each language runner starts with, as seen inside the sandbox. */
export function runnerCommand(runner: string, memoryMB: number): string[] {
  switch (runner) {
    case 'nodejs':
      // The heap cap follows the sandbox's memory at boot (the template's memoryMB); the
      // sandbox's cgroup enforces each function's memorySize, set at load (lambda/invoke.ts
      // says why the cap does not follow memorySize, and how both ends become OutOfMemory).
      return ['/usr/bin/node', `--max-old-space-size=${Math.max(16, Math.floor(memoryMB * 0.85))}`, '/opt/kiln/runtime/node/runner.cjs'];
    case 'python':
      // -I (isolated): no user site or PYTHON* env from the handler's side, but unlike -S it keeps
      // the site module, so exit() and Debian's dist-packages work as in Lambda's Python.
      return ['/usr/bin/python3', '-I', '-u', '/opt/kiln/runtime/python/runner.py'];
    case 'provided':
      return ['/usr/bin/node', '--max-old-space-size=32', '/opt/kiln/runtime/provided/runner.cjs'];
    default:
      throw new Error(`unknown runner ${runner}`);
  }
}

/** Device nodes a sandbox gets, bound from the executor's own /dev (the container's, in a container). */
const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];

/** /dev holds only device-node mount points and symlinks, and is read-only once built. */
const DEV_TMPFS_BYTES = 64 * 1024;

/**
 * /dev/shm's size: Docker's default of 64 MB (what POSIX shared memory, Python's multiprocessing
 * and most tools expect from a container), never more than the sandbox's memory. Its pages are
 * memory, charged to the sandbox's memory cgroup; the size stops one sandbox from filling the
 * host's RAM where there is no cgroup, and keeps shm from taking all of a small sandbox's memory.
 */
export function shmMB(memoryMB: number): number {
  return Math.max(1, Math.min(64, memoryMB));
}

/**
 * A minimal /dev. Not `bwrap --dev`: that makes bwrap create a second, nested user namespace
 * (it maps uid 0 to mount devpts, then a child namespace for `--uid 1000`), so the sandbox's
 * mount/pid/ipc namespaces belong to the outer one while its processes live in the inner one.
 * `nsenter --user` then joins the inner one and has no capabilities over the others — root on
 * a host gets away with it, a non-root executor in a container does not (images/README.md,
 * "Running commands in a live sandbox"). A tmpfs with bound device nodes keeps one user
 * namespace, owned by the executor's uid. /dev/pts is an empty directory here: the devpts boot
 * step (devpts.ts) mounts the sandbox's own instance on it before anything runs, and /dev/ptmx
 * points into it.
 *
 * /dev is a 64 KB tmpfs remounted read-only once its nodes and links exist (non-recursive: the
 * device binds, /dev/shm and the devpts mount stay usable), so nothing can be stored in it;
 * /dev/shm is sized. The remount happens before bwrap's --block-fd wait, so a boot step can
 * still mount on a directory made here (devpts on /dev/pts) but cannot create entries in /dev.
 */
function devArgs(spec: SandboxSpec): string[] {
  const argv = ['--size', String(DEV_TMPFS_BYTES), '--tmpfs', '/dev'];
  for (const name of DEVICES) if (existsSync(`/dev/${name}`)) argv.push('--dev-bind', `/dev/${name}`, `/dev/${name}`);
  argv.push(
    '--perms', '1777', '--size', String(shmMB(spec.memoryMB) * 1024 * 1024), '--tmpfs', '/dev/shm',
    '--dir', '/dev/pts',
    '--symlink', 'pts/ptmx', '/dev/ptmx',
    '--symlink', '/proc/self/fd', '/dev/fd',
    '--symlink', '/proc/self/fd/0', '/dev/stdin',
    '--symlink', '/proc/self/fd/1', '/dev/stdout',
    '--symlink', '/proc/self/fd/2', '/dev/stderr',
    '--remount-ro', '/dev',
  );
  return argv;
}

/** The fd on which bwrap reads the seccomp program (Sandbox spawns it with a 7th stdio pipe). */
export const SECCOMP_FD = 6;

/**
 * The argv that starts a sandbox: prlimit sets the rlimits, then bubblewrap builds the
 * namespaces. Rules (DESIGN.md): own network namespace (NAT only when allowed), read-only system dirs, writable
 * size-limited /workspace and /tmp, uid 1000, no capabilities, new session, dies with its parent,
 * the seccomp filter of seccomp.ts.
 *
 * `--unshare-user` (not the `-try` that `--unshare-all` implies) makes a missing user namespace
 * an error instead of a sandbox with different semantics. Nested user namespaces are refused by
 * the seccomp filter (unshare, clone with CLONE_NEW*, clone3), not by `--disable-userns`: that
 * option makes bwrap put the sandbox's processes in a second user namespace below the one that
 * owns its mount and pid namespaces, and a non-root executor's `nsenter` (session processes,
 * terminals) can then join the user namespace but no longer the others ("reassociate to
 * namespace 'ns/ipc' failed"), the same trap as `--dev` (see devArgs).
 *
 * bwrap reads the filter from {@link SECCOMP_FD} to its end, closes it, and applies it to its
 * pid 1 and, last thing before exec, to the runner; the fd is not open in the sandbox.
 */
export function sandboxArgv(spec: SandboxSpec, bwrapPath: string): string[] {
  const mb = 1024 * 1024;
  const argv = [
    'prlimit',
    `--nproc=${spec.maxProcesses}`,
    `--nofile=${spec.maxOpenFiles}`,
    `--fsize=${spec.maxFileMB * mb}`,
    `--core=0`,
    '--',
    bwrapPath,
    '--ro-bind', '/usr', '/usr',
    '--symlink', 'usr/lib', '/lib',
    '--symlink', 'usr/lib64', '/lib64',
    '--symlink', 'usr/bin', '/bin',
    '--symlink', 'usr/sbin', '/sbin',
    '--proc', '/proc',
    ...devArgs(spec),
    '--perms', '1777', '--size', String(spec.tmpMB * mb), '--tmpfs', '/tmp',
    '--bind', spec.workspaceDir, '/workspace',
    // E2B's SDKs and the code written for them use /home/user as the working directory; it is
    // the workspace under the name they expect (control-plane/src/api/e2b/paths.ts).
    '--symlink', '/workspace', '/home/user',
    '--ro-bind', spec.taskDir, '/var/task',
    '--ro-bind', spec.runnerDir, '/opt/kiln/runtime',
  ];
  // Custom runtimes expect Amazon Linux, where /bin/sh is bash: AWS's own tutorial bootstrap is
  // `#!/bin/sh` then `set -euo pipefail` and `source`, which the host's dash refuses. The bind
  // lands on what /usr/bin/sh points to, inside this sandbox's mount namespace only.
  if (spec.runner === 'provided' && existsSync('/usr/bin/bash')) argv.push('--ro-bind', '/usr/bin/bash', '/usr/bin/sh');
  for (const path of HOST_ETC) if (existsSync(path)) argv.push('--ro-bind', path, path);
  for (const name of SYNTHETIC_ETC) argv.push('--ro-bind', `${spec.etcDir}/${name}`, `/etc/${name}`);
  // Outbound sandboxes resolve through slirp4netns's forwarder (network.ts), never the host's resolver.
  // Egress sandboxes too: every address is local in their namespace, so Kiln's DNS listener answers there.
  if (spec.allowNetwork || spec.egress) argv.push('--ro-bind', `${spec.etcDir}/resolv.conf`, '/etc/resolv.conf');
  // The egress CA's certificate (never its key) and a bundle with it, for secrets that opt into HTTPS (egress/intercept.ts).
  if (spec.egress && existsSync(`${spec.etcDir}/${CA_FILES.bundle}`)) {
    argv.push('--ro-bind', `${spec.etcDir}/${CA_FILES.cert}`, SANDBOX_CA_CERT, '--ro-bind', `${spec.etcDir}/${CA_FILES.bundle}`, SANDBOX_CA_BUNDLE);
  }
  // Named volumes (volumes.ts): the mount point of each volume's image, bound whole; bwrap makes
  // the path's directories in its tmpfs root. --ro-bind makes it a read-only mount in the
  // sandbox's namespace, which a process without CAP_SYS_ADMIN there cannot remount writable.
  // A synced volume (synced-volumes.ts) is a tmpfs of its size instead, writable until its fill;
  // a read-only one is remounted read-only right after (sealSyncedVolume), before the session is handed out.
  for (const v of spec.volumes ?? []) {
    if (v.syncedMB !== undefined) argv.push('--perms', '0755', '--size', String(v.syncedMB * mb), '--tmpfs', v.path);
    else argv.push(v.readOnly ? '--ro-bind' : '--bind', v.hostDir, v.path);
  }
  // bwrap builds the root as a tmpfs; freeze it so only /workspace, /tmp and volumes take writes.
  argv.push('--remount-ro', '/');
  argv.push(
    // Always a network namespace of its own, outbound or not: an outbound one gets its NAT and
    // routes from the network boot step (network.ts) before anything in it runs.
    '--unshare-all',
    '--unshare-user',
    '--hostname', 'sandbox',
    '--uid', String(SANDBOX_UID),
    '--gid', String(SANDBOX_GID),
    '--cap-drop', 'ALL',
    '--seccomp', String(SECCOMP_FD),
    '--die-with-parent',
    '--new-session',
    '--chdir', '/workspace',
    '--info-fd', String(INFO_FD),
    '--block-fd', String(BLOCK_FD),
    '--clearenv',
    '--setenv', 'PATH', '/usr/local/bin:/usr/bin:/bin',
    '--setenv', 'HOME', '/workspace',
    '--setenv', 'USER', 'sandbox',
    '--setenv', 'LANG', 'C.UTF-8',
    '--setenv', 'TMPDIR', '/tmp',
    '--',
    ...runnerCommand(spec.runner, spec.memoryMB),
  );
  return argv;
}

/** Contents of the synthetic /etc files every sandbox sees. */
export function syntheticEtc(): Record<string, string> {
  return {
    passwd: `root:x:0:0:root:/root:/usr/sbin/nologin\nsandbox:x:${SANDBOX_UID}:${SANDBOX_GID}:sandbox:/workspace:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    group: `root:x:0:\nsandbox:x:${SANDBOX_GID}:\nnogroup:x:65534:\n`,
    hosts: '127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n',
    // slirp4netns's DNS forwarder (network.ts); bound only into outbound sandboxes.
    'resolv.conf': 'nameserver 10.0.2.3\n',
  };
}
