#!/usr/bin/env node
// Generates infra/podman/seccomp.json, the seccomp profile for Kiln executor
// containers, from Podman's default profile (containers-common):
//
//   node images/lib/gen-seccomp.mjs [/usr/share/containers/seccomp.json] > infra/podman/seccomp.json
//
// Podman's default already allows what unprivileged bubblewrap needs to build
// its namespaces (unshare, clone/clone3 with CLONE_NEW*, mount, umount2,
// pivot_root), still subject to the kernel's user-namespace checks. The one
// thing it gates on the *container* holding CAP_SYS_ADMIN is
// sethostname/setdomainname, which `bwrap --hostname` calls inside the new UTS
// namespace it owns ("bwrap: Can't set hostname to sandbox: Operation not
// permitted"). Kiln's profile allows those two unconditionally: without
// CAP_SYS_ADMIN in the container's own user namespace the kernel still refuses
// to change the container's hostname; only a namespace the caller created
// (and owns) can be renamed.
//
// Docker's default profile is stricter (unshare/mount/clone with CLONE_NEW*
// need CAP_SYS_ADMIN, clone3 is ENOSYS); this profile is also the one to give
// Docker (as file content: SecurityOpt "seccomp=<json>").
import fs from 'node:fs';

const src = process.argv[2] ?? '/usr/share/containers/seccomp.json';
const profile = JSON.parse(fs.readFileSync(src, 'utf8'));
const ALLOW = ['sethostname', 'setdomainname', 'setns', 'chroot'];

const syscalls = [];
for (const rule of profile.syscalls) {
  const names = rule.names.filter((n) => !ALLOW.includes(n));
  const capGated = names.length !== rule.names.length && ((rule.includes?.caps ?? []).length > 0 || (rule.excludes?.caps ?? []).length > 0);
  if (capGated) {
    if (names.length > 0) syscalls.push({ ...rule, names });
  } else {
    syscalls.push(rule);
  }
}
syscalls.push({
  names: ALLOW,
  action: 'SCMP_ACT_ALLOW',
  args: [],
  comment: 'kiln: bubblewrap --hostname in the UTS namespace it creates (no CAP_SYS_ADMIN in the container)',
  includes: {},
  excludes: {},
});
const out = { ...profile, syscalls };
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
