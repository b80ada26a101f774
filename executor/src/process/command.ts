import type { Sandbox } from '../sandbox/sandbox.js';
import { seccompLoaderArgv } from '../sandbox/seccomp-loader.js';
import { SANDBOX_GID, SANDBOX_UID } from '../sandbox/spec.js';
import { InvalidArgumentError } from '../errors.js';

/**
 * The host environment of the launcher processes, which run as root on the host until
 * nsenter switches user: never the client's variables (LD_PRELOAD would run their code as
 * root). Client variables are set inside the sandbox by `env -i`.
 */
export const HOST_ENV: Record<string, string> = { PATH: '/usr/bin:/bin' };
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The environment every session process starts from (the runner's, see bwrap-args.ts). */
export const BASE_ENV: Record<string, string> = {
  PATH: '/usr/local/bin:/usr/bin:/bin',
  HOME: '/workspace',
  USER: 'sandbox',
  LANG: 'C.UTF-8',
  TMPDIR: '/tmp',
};

/**
 * How nsenter becomes the sandbox's uid 1000.
 *
 * A root executor (the local platform) starts each sandbox as its own host uid and the launcher
 * as root, so nsenter must switch: `--setuid/--setgid 1000` inside the sandbox's namespace.
 * A non-root executor (user `kiln` in a container) runs its sandboxes as its own uid, which
 * bwrap maps 1:1 to uid 1000; there `--setgid` fails (`setgroups failed`: every unprivileged
 * user namespace has setgroups denied), so nsenter keeps its credentials instead, and the
 * capabilities that joining the user namespace gave are dropped at the `execve` of the
 * non-root command (images/README.md, "Running commands in a live sandbox").
 */
function credentialArgs(sandboxHostUid: number): string[] {
  if (process.getuid?.() === sandboxHostUid) return ['--preserve-credentials'];
  return [`--setuid=${SANDBOX_UID}`, `--setgid=${SANDBOX_GID}`];
}

/**
 * The host argv that runs `command` inside a running sandbox as its user:
 *
 * - `prlimit` applies the sandbox's rlimits (the executor's own are wider). RLIMIT_NPROC counts
 *   per host uid, and the sandbox's processes all run as its own host uid, so the session's
 *   processes share one budget with the runner.
 * - `setpriv --no-new-privs` keeps set-uid binaries and file capabilities from granting anything.
 * - the launcher (sandbox/seccomp-loader.ts) joins the sandbox's cgroup and installs its filter (sandbox/seccomp-loader.ts says why there,
 *   before nsenter), so every process in a sandbox runs under the same filter as its runner.
 * - `nsenter` joins every namespace of the runner (user, mount, pid, net, ipc, uts), takes its
 *   root and cwd (/workspace), and becomes uid/gid 1000 inside, which drops all capabilities.
 *   Joining the PID namespace means the process dies with the sandbox. See `credentialArgs`
 *   for how it becomes uid 1000.
 * - `env -i -C` moves to the requested working directory from inside the sandbox's mount view
 *   and sets the environment from scratch.
 *
 * Spawning this takes ~3 ms; the alternative (asking the runner to fork) would tie process
 * control to each language runner's protocol.
 */
export function sandboxArgv(sandbox: Sandbox, command: string[], cwd: string, env: Record<string, string>): string[] {
  const spec = sandbox.spec;
  const vars = Object.entries({ ...BASE_ENV, ...env }).map(([k, v]) => {
    if (!ENV_NAME.test(k)) throw new InvalidArgumentError(`environment variable name "${k}" is invalid; use letters, digits and _`, { name: k });
    return `${k}=${v}`;
  });
  // execve takes C strings: a NUL would end one early (and Node refuses to spawn it).
  for (const [field, values] of [['command', command], ['cwd', [cwd]], ['env', vars]] as const) {
    if (values.some((v) => v.includes('\0'))) throw new InvalidArgumentError(`${field} contains a NUL byte`, { field });
  }
  const mb = 1024 * 1024;
  return [
    '/usr/bin/prlimit',
    `--nproc=${spec.maxProcesses}`,
    `--nofile=${spec.maxOpenFiles}`,
    `--fsize=${spec.maxFileMB * mb}`,
    '--core=0',
    '--',
    '/usr/bin/setpriv',
    '--no-new-privs',
    '--',
    ...seccompLoaderArgv(sandbox.cgroup?.procsFiles ?? []),
    '/usr/bin/nsenter',
    `--target=${sandbox.runnerPid}`,
    '--user',
    '--mount',
    '--pid',
    '--net',
    '--ipc',
    '--uts',
    ...credentialArgs(spec.hostUid),
    '--root',
    '--wd',
    '/usr/bin/env',
    '-i',
    '-C',
    cwd || '/workspace',
    '--',
    ...vars,
    ...command,
  ];
}
