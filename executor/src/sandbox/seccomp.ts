/**
 * The one seccomp filter of every sandbox: a deny list of system calls that Node, Python, bash,
 * curl, pip and git never make, but that widen the kernel surface an attacker can reach from a
 * sandbox (THREAT-MODEL.md, "Seccomp"). Everything else is allowed: the other barriers (user,
 * mount, pid and network namespaces, no capabilities, cgroups) bound what those calls can do.
 *
 * The rules are data ({@link DENIED}); {@link seccompProgram} compiles them to a classic BPF
 * program for `bwrap --seccomp` and for session processes (process/command.ts), and
 * {@link ociSeccompProfile} writes the subset a container can carry to an OCI profile.
 */

/** `errno` values the filter returns. */
const EPERM = 1;
const ENOSYS = 38;

/** What the filter does with one denied call. */
export interface DeniedCall {
  /** EPERM for most; ENOSYS for clone3, so that glibc falls back to clone, whose flags we can check. */
  errno: typeof EPERM | typeof ENOSYS;
  /** Why it is denied (kept next to the rule; also the comment in the OCI profile). */
  why: string;
  /**
   * True when an executor container must keep the call, because bubblewrap makes it to build
   * the sandbox (mount, pivot_root, unshare...). Such calls are denied to the sandbox by this
   * filter, which bwrap installs after it has built its namespaces, but not in the container
   * profile.
   */
  bwrapNeeds?: boolean;
}

const MODULES = 'loads, unloads or replaces kernel code';
const MOUNTS = 'changes mounts; bwrap has built the sandbox\'s mount namespace already';

/** The deny list: one entry per system call name. */
export const DENIED: Readonly<Record<string, DeniedCall>> = {
  io_uring_setup: { errno: EPERM, why: 'io_uring: a large, often-exploited kernel surface; libuv and Python fall back to threads' },
  io_uring_enter: { errno: EPERM, why: 'io_uring' },
  io_uring_register: { errno: EPERM, why: 'io_uring' },
  keyctl: { errno: EPERM, why: 'kernel keyrings are not namespaced: keys could cross sandboxes' },
  add_key: { errno: EPERM, why: 'kernel keyrings' },
  request_key: { errno: EPERM, why: 'kernel keyrings' },
  bpf: { errno: EPERM, why: 'eBPF verifier and maps: a frequent privilege-escalation surface' },
  perf_event_open: { errno: EPERM, why: 'perf events leak kernel addresses and timing across sandboxes' },
  userfaultfd: { errno: EPERM, why: 'used to win kernel races in exploits' },
  init_module: { errno: EPERM, why: MODULES },
  finit_module: { errno: EPERM, why: MODULES },
  delete_module: { errno: EPERM, why: MODULES },
  kexec_load: { errno: EPERM, why: MODULES },
  kexec_file_load: { errno: EPERM, why: MODULES },
  // Nested user namespaces: unshare altogether, clone with CLONE_NEW* flags (below), clone3
  // (ENOSYS: its flags live in memory a filter cannot read; glibc then uses clone).
  unshare: { errno: EPERM, why: 'nested namespaces (unshare -Urm gives full capabilities in a new user namespace)', bwrapNeeds: true },
  clone3: { errno: ENOSYS, why: 'flags in memory cannot be checked; ENOSYS makes glibc fall back to clone, whose flags are checked', bwrapNeeds: true },
  mount: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  umount2: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  pivot_root: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  open_tree: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  move_mount: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  fsopen: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  fsconfig: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  fsmount: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  fspick: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  mount_setattr: { errno: EPERM, why: MOUNTS, bwrapNeeds: true },
  swapon: { errno: EPERM, why: 'host administration' },
  swapoff: { errno: EPERM, why: 'host administration' },
  reboot: { errno: EPERM, why: 'host administration' },
  acct: { errno: EPERM, why: 'host administration' },
  quotactl: { errno: EPERM, why: 'host administration' },
  quotactl_fd: { errno: EPERM, why: 'host administration' },
  syslog: { errno: EPERM, why: 'the kernel log leaks kernel addresses and other tenants\' events' },
  vhangup: { errno: EPERM, why: 'host administration' },
  open_by_handle_at: { errno: EPERM, why: 'opens files by handle, past mount boundaries ("shocker")' },
  name_to_handle_at: { errno: EPERM, why: 'file handles (see open_by_handle_at)' },
  lookup_dcookie: { errno: EPERM, why: 'profiling interface, host paths' },
  fanotify_init: { errno: EPERM, why: 'filesystem-wide monitoring' },
  // x86 only (absent on aarch64): raw port I/O, segment descriptors, a.out loading.
  iopl: { errno: EPERM, why: 'raw I/O ports' },
  ioperm: { errno: EPERM, why: 'raw I/O ports' },
  modify_ldt: { errno: EPERM, why: 'x86 segment descriptors: a past source of kernel bugs' },
  uselib: { errno: EPERM, why: 'obsolete a.out loader' },
};

/** Namespace flags of clone(2): a sandbox may not make any new namespace (user ones above all). */
export const CLONE_NEW_FLAGS =
  0x00020000 | // CLONE_NEWNS
  0x02000000 | // CLONE_NEWCGROUP
  0x04000000 | // CLONE_NEWUTS
  0x08000000 | // CLONE_NEWIPC
  0x10000000 | // CLONE_NEWUSER
  0x20000000 | // CLONE_NEWPID
  0x40000000; // CLONE_NEWNET

/**
 * personality(2) values allowed (Docker's list): the default, PER_LINUX32, UNAME26 and the query
 * 0xffffffff. Anything else (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...) weakens exploit mitigations.
 */
export const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** One architecture the filter knows: its audit id and system call numbers. */
interface Arch {
  name: 'x86_64' | 'aarch64';
  audit: number;
  /** System call numbers; a name missing here does not exist on the architecture. */
  nr: Readonly<Record<string, number>>;
  /** x86_64 only: syscall numbers with this bit set are the x32 ABI, refused whole. */
  x32Bit?: number;
}

/** From the kernel's arch/x86/entry/syscalls/syscall_64.tbl. */
const X86_64: Arch = {
  name: 'x86_64',
  audit: 0xc000003e,
  x32Bit: 0x40000000,
  nr: {
    io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, keyctl: 250, add_key: 248, request_key: 249,
    bpf: 321, perf_event_open: 298, userfaultfd: 323, init_module: 175, finit_module: 313, delete_module: 176,
    kexec_load: 246, kexec_file_load: 320, unshare: 272, clone3: 435, mount: 165, umount2: 166, pivot_root: 155,
    open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, mount_setattr: 442,
    swapon: 167, swapoff: 168, reboot: 169, acct: 163, quotactl: 179, quotactl_fd: 443, syslog: 103, vhangup: 153,
    open_by_handle_at: 304, name_to_handle_at: 303, lookup_dcookie: 212, fanotify_init: 300,
    iopl: 172, ioperm: 173, modify_ldt: 154, uselib: 134,
    clone: 56, personality: 135,
  },
};

/** From the kernel's include/uapi/asm-generic/unistd.h (arm64 uses the generic table). */
const AARCH64: Arch = {
  name: 'aarch64',
  audit: 0xc00000b7,
  nr: {
    io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, keyctl: 219, add_key: 217, request_key: 218,
    bpf: 280, perf_event_open: 241, userfaultfd: 282, init_module: 105, finit_module: 273, delete_module: 106,
    kexec_load: 104, kexec_file_load: 294, unshare: 97, clone3: 435, mount: 40, umount2: 39, pivot_root: 41,
    open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, mount_setattr: 442,
    swapon: 224, swapoff: 225, reboot: 142, acct: 89, quotactl: 60, quotactl_fd: 443, syslog: 116, vhangup: 58,
    open_by_handle_at: 265, name_to_handle_at: 264, lookup_dcookie: 18, fanotify_init: 262,
    clone: 220, personality: 92,
  },
};

export const ARCHES: readonly Arch[] = [X86_64, AARCH64];

// Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
const LD_W_ABS = 0x20;
const JMP_JEQ_K = 0x15;
const JMP_JGE_K = 0x35;
const JMP_JSET_K = 0x45;
const RET_K = 0x06;
export const RET_KILL_PROCESS = 0x80000000;
export const RET_ERRNO = 0x00050000;
export const RET_ALLOW = 0x7fff0000;
/** Offsets in struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6] (little-endian). */
const OFF_NR = 0;
const OFF_ARCH = 4;
const OFF_ARG0_LOW = 16;

/** One BPF instruction; jumps name a label, resolved to an offset when the program is laid out. */
type Insn = { code: number; k: number; jt?: string; jf?: string } | { label: string };

/** One `struct sock_filter`. */
export interface SockFilter {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

function archBlock(arch: Arch): Insn[] {
  const p = (label: string): string => `${arch.name}.${label}`;
  const out: Insn[] = [{ label: p('start') }, { code: LD_W_ABS, k: OFF_NR }];
  if (arch.x32Bit) out.push({ code: JMP_JGE_K, k: arch.x32Bit, jt: p('kill') });
  for (const [name, rule] of Object.entries(DENIED)) {
    const nr = arch.nr[name];
    if (nr === undefined) continue; // not on this architecture (iopl on aarch64)
    out.push({ code: JMP_JEQ_K, k: nr, jt: p(rule.errno === ENOSYS ? 'enosys' : 'eperm') });
  }
  out.push(
    { code: JMP_JEQ_K, k: arch.nr.clone as number, jt: p('clone') },
    { code: JMP_JEQ_K, k: arch.nr.personality as number, jt: p('personality') },
    { code: RET_K, k: RET_ALLOW },
    // Only the low 32 bits of the first argument are read: every CLONE_NEW* flag lives there,
    // and personality's argument is an unsigned int.
    { label: p('clone') },
    { code: LD_W_ABS, k: OFF_ARG0_LOW },
    { code: JMP_JSET_K, k: CLONE_NEW_FLAGS, jt: p('eperm'), jf: p('allow') },
    { label: p('personality') },
    { code: LD_W_ABS, k: OFF_ARG0_LOW },
  );
  for (const value of PERSONALITIES) out.push({ code: JMP_JEQ_K, k: value, jt: p('allow') });
  out.push(
    { label: p('eperm') },
    { code: RET_K, k: RET_ERRNO | EPERM },
    { label: p('enosys') },
    { code: RET_K, k: RET_ERRNO | ENOSYS },
    { label: p('allow') },
    { code: RET_K, k: RET_ALLOW },
    { label: p('kill') },
    { code: RET_K, k: RET_KILL_PROCESS },
  );
  return out;
}

/**
 * The filter as `struct sock_filter` entries: check the architecture (anything but x86_64 and
 * aarch64, and the x32 ABI, kills the process: numbers of another ABI would slip past the
 * table), then the deny list, the clone flags and personality values; allow the rest.
 */
export function seccompInstructions(): SockFilter[] {
  const insns: Insn[] = [{ code: LD_W_ABS, k: OFF_ARCH }];
  for (const arch of ARCHES) insns.push({ code: JMP_JEQ_K, k: arch.audit, jt: `${arch.name}.start` });
  insns.push({ code: RET_K, k: RET_KILL_PROCESS });
  for (const arch of ARCHES) insns.push(...archBlock(arch));

  const at = new Map<string, number>();
  let pc = 0;
  for (const insn of insns) {
    if ('label' in insn) at.set(insn.label, pc);
    else pc++;
  }
  const out: SockFilter[] = [];
  for (const insn of insns) {
    if ('label' in insn) continue;
    const here = out.length;
    const offset = (label: string | undefined): number => {
      if (label === undefined) return 0;
      const target = at.get(label);
      if (target === undefined) throw new Error(`seccomp: no label ${label}`);
      const off = target - here - 1;
      // Classic BPF jumps only forward, at most 255 instructions.
      if (off < 0 || off > 255) throw new Error(`seccomp: jump to ${label} out of range (${off})`);
      return off;
    };
    out.push({ code: insn.code, jt: offset(insn.jt), jf: offset(insn.jf), k: insn.k >>> 0 });
  }
  return out;
}

/** The filter as bytes: what `bwrap --seccomp FD` reads, and what prctl(PR_SET_SECCOMP) takes. */
export function seccompProgram(): Buffer {
  const insns = seccompInstructions();
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((insn, i) => {
    buf.writeUInt16LE(insn.code, i * 8);
    buf.writeUInt8(insn.jt, i * 8 + 2);
    buf.writeUInt8(insn.jf, i * 8 + 3);
    buf.writeUInt32LE(insn.k, i * 8 + 4);
  });
  return buf;
}

/** The rules of one OCI (Docker/Podman/Kubernetes) seccomp profile. */
export interface OciSyscallRule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: Array<{ index: number; value: number; valueTwo?: number; op: string }>;
  comment?: string;
  includes?: object;
  excludes?: object;
}
export interface OciProfile {
  defaultAction: string;
  syscalls: OciSyscallRule[];
  [key: string]: unknown;
}

/**
 * The container half of the filter, for executor containers: the calls of {@link DENIED} that
 * bubblewrap does not need are taken out of every rule of `base` (an engine's default profile,
 * which allows what bwrap needs) and denied with their errno. The calls bwrap needs (mount,
 * unshare, clone3...) stay as `base` has them: the container must let bwrap build namespaces,
 * and the sandbox gets the whole filter from bwrap anyway.
 */
export function ociSeccompProfile(base: OciProfile): OciProfile {
  const container = Object.entries(DENIED).filter(([, rule]) => !rule.bwrapNeeds);
  const denied = new Set(container.map(([name]) => name));
  const syscalls: OciSyscallRule[] = [];
  for (const rule of base.syscalls) {
    const names = rule.names.filter((n) => !denied.has(n));
    if (names.length > 0) syscalls.push({ ...rule, names });
  }
  for (const errno of [EPERM, ENOSYS]) {
    const names = container.filter(([, rule]) => rule.errno === errno).map(([name]) => name);
    if (names.length > 0) syscalls.push({ names, action: 'SCMP_ACT_ERRNO', errnoRet: errno, comment: 'kiln: executor/src/sandbox/seccomp.ts DENIED (calls bwrap does not need)', includes: {}, excludes: {} });
  }
  return { ...base, syscalls };
}
