import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What Kiln cannot do without it. */
  without: string;
  /** Kiln does not run sandboxes at all without it. */
  required: boolean;
}

function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat('/usr/sbin', '/sbin')) {
    try {
      accessSync(`${dir}/${cmd}`, constants.X_OK);
      return `${dir}/${cmd}`;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function tool(name: string, cmds: string[], without: string, required = false): Check {
  const found = cmds.map(which).find(Boolean);
  return { name, ok: Boolean(found), detail: found ?? `none of ${cmds.join(', ')} on PATH`, without, required };
}

/** What this host has of what Kiln's sandboxes and features use. */
export function doctorChecks(): Check[] {
  const checks: Check[] = [tool('bubblewrap', ['bwrap'], 'every sandbox (functions and sessions)', true)];
  const maxNs = read('/proc/sys/user/max_user_namespaces');
  const clone = read('/proc/sys/kernel/unprivileged_userns_clone');
  let userns = maxNs !== undefined && Number(maxNs) > 0 && clone !== '0';
  let detail = `max_user_namespaces=${maxNs ?? '?'}${clone !== undefined ? `, unprivileged_userns_clone=${clone}` : ''}`;
  const bwrap = which('bwrap');
  if (userns && bwrap) {
    try {
      execFileSync(bwrap, ['--unshare-user', '--ro-bind', '/', '/', 'true'], { stdio: 'ignore', timeout: 10_000 });
      detail += '; bwrap --unshare-user works';
    } catch {
      userns = false;
      detail += '; bwrap --unshare-user failed (AppArmor or a container without userns?)';
    }
  }
  checks.push({ name: 'user namespaces', ok: userns, detail, without: 'every sandbox (bubblewrap needs them)', required: true });
  const controllers = read('/sys/fs/cgroup/cgroup.controllers');
  const v1 = read('/proc/self/cgroup')?.includes(':memory:') ?? false;
  checks.push({
    name: 'cgroups',
    ok: controllers !== undefined || v1,
    detail: controllers !== undefined ? `v2, controllers: ${controllers || '(none delegated)'}` : v1 ? 'v1 (memory controller mounted)' : 'neither v2 (/sys/fs/cgroup/cgroup.controllers) nor a v1 memory controller',
    without: 'per-sandbox memory, process and CPU limits (only the executor\'s own limits apply)',
    required: false,
  });
  const seccomp = /^Seccomp:\s*(\d)/m.exec(read('/proc/self/status') ?? '');
  checks.push({ name: 'seccomp', ok: Boolean(seccomp), detail: seccomp ? `supported (this process: mode ${seccomp[1]})` : 'not reported by /proc/self/status', without: 'the syscall filter of sandboxes', required: false });
  checks.push(tool('pasta or slirp4netns', ['pasta', 'slirp4netns'], 'outbound network for sandboxes whose template allows it'));
  checks.push(tool('podman', ['podman'], 'the docker platform with Podman (KILN_PLATFORM=docker without a Docker Engine)'));
  checks.push(tool('NFS client tools', ['mount.nfs', 'nfs-ls'], 'mounting a session\'s /workspace over NFS from this host (the server side needs none)'));
  checks.push(tool('redis-server', ['redis-server'], 'the embedded Redis (set KILN_REDIS_URL to an external one instead)'));
  return checks;
}
