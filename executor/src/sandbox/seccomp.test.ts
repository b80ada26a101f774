import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ARCHES, CLONE_NEW_FLAGS, DENIED, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, ociSeccompProfile, seccompInstructions, seccompProgram, type OciProfile, type SockFilter } from './seccomp.js';

/**
 * A classic-BPF interpreter for the instructions the filter uses, so the tests ask the program
 * what it does with a call instead of reading its bytes. Every jump must land inside the
 * program and every path must end in a return, or the kernel would refuse it.
 */
function run(prog: SockFilter[], data: { nr: number; arch: number; args?: number[] }): number {
  const word = (off: number): number => {
    if (off === 0) return data.nr >>> 0;
    if (off === 4) return data.arch >>> 0;
    if (off >= 16 && off < 64 && off % 8 === 0) return (data.args?.[(off - 16) / 8] ?? 0) >>> 0;
    throw new Error(`load from unexpected offset ${off}`);
  };
  let a = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const i = prog[pc] as SockFilter;
    switch (i.code) {
      case 0x20: a = word(i.k); break;
      case 0x15: pc += a === i.k ? i.jt : i.jf; break;
      case 0x35: pc += a >= i.k ? i.jt : i.jf; break;
      case 0x45: pc += (a & i.k) !== 0 ? i.jt : i.jf; break;
      case 0x06: return i.k;
      default: throw new Error(`unexpected opcode ${i.code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('fell off the end of the program');
}

const prog = seccompInstructions();
const EPERM = RET_ERRNO | 1;
const ENOSYS = RET_ERRNO | 38;

describe('seccomp program', () => {
  it('is what bwrap reads: 8 bytes per struct sock_filter, little-endian, within BPF_MAXINSNS', () => {
    const bytes = seccompProgram();
    expect(bytes.length).toBe(prog.length * 8);
    expect(prog.length).toBeLessThanOrEqual(4096);
    const first = prog[0] as SockFilter;
    expect(bytes.readUInt16LE(0)).toBe(first.code);
    expect(bytes.readUInt32LE(4)).toBe(first.k);
    for (const [pc, insn] of prog.entries()) {
      if ((insn.code & 0x07) !== 0x05) continue; // only jumps (BPF_JMP) have targets
      expect(pc + insn.jt + 1).toBeLessThan(prog.length);
      expect(pc + insn.jf + 1).toBeLessThan(prog.length);
    }
  });

  for (const arch of ARCHES) {
    describe(arch.name, () => {
      const call = (name: string, args: number[] = []) => run(prog, { nr: arch.nr[name] as number, arch: arch.audit, args });

      it('denies every listed call that exists on the architecture, clone3 with ENOSYS', () => {
        for (const [name, rule] of Object.entries(DENIED)) {
          if (arch.nr[name] === undefined) continue;
          expect([name, call(name)]).toEqual([name, rule.errno === 38 ? ENOSYS : EPERM]);
        }
      });

      it('allows everything else, among them the calls nsenter and the runtimes make', () => {
        const listed = new Set(Object.values(arch.nr));
        for (let nr = 0; nr < 460; nr++) {
          if (listed.has(nr)) continue;
          expect([nr, run(prog, { nr, arch: arch.audit })]).toEqual([nr, RET_ALLOW]);
        }
      });

      it('refuses clone with any CLONE_NEW* flag and allows fork and thread clones', () => {
        expect(call('clone', [0x10000000 | 17])).toBe(EPERM); // CLONE_NEWUSER | SIGCHLD
        for (let bit = 0; bit < 32; bit++) {
          const flag = 2 ** bit;
          if (CLONE_NEW_FLAGS & flag) expect(call('clone', [flag])).toBe(EPERM);
        }
        expect(call('clone', [17])).toBe(RET_ALLOW); // fork
        expect(call('clone', [0x003d0f00])).toBe(RET_ALLOW); // glibc pthread_create's flags
      });

      it('allows only the default personalities', () => {
        expect(call('personality', [0])).toBe(RET_ALLOW);
        expect(call('personality', [0xffffffff])).toBe(RET_ALLOW);
        expect(call('personality', [0x0040000])).toBe(EPERM); // ADDR_NO_RANDOMIZE
        expect(call('personality', [0x0400000])).toBe(EPERM); // READ_IMPLIES_EXEC
      });
    });
  }

  it('kills a process of a foreign architecture and the x32 ABI', () => {
    expect(run(prog, { nr: 0, arch: 0x40000003 })).toBe(RET_KILL_PROCESS); // i386
    expect(run(prog, { nr: 0x40000000 + 1, arch: 0xc000003e })).toBe(RET_KILL_PROCESS);
  });

  it('uses the kernel headers\' syscall numbers', () => {
    // linux-libc-dev (scripts/setup.sh): x86_64's table and the generic one arm64 uses.
    const x86 = readFileSync('/usr/include/x86_64-linux-gnu/asm/unistd_64.h', 'utf8');
    const generic = readFileSync('/usr/include/asm-generic/unistd.h', 'utf8');
    const lookup = (text: string, name: string): number | undefined => {
      const m = new RegExp(`#define __NR(?:3264)?_${name}\\s+(\\d+)`).exec(text);
      return m ? Number(m[1]) : undefined;
    };
    for (const arch of ARCHES) {
      for (const [name, nr] of Object.entries(arch.nr)) {
        expect([arch.name, name, nr]).toEqual([arch.name, name, lookup(arch.name === 'x86_64' ? x86 : generic, name)]);
      }
    }
  });
});

describe('OCI profile', () => {
  const base: OciProfile = {
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [
      { names: ['read', 'io_uring_setup', 'keyctl', 'mount', 'unshare'], action: 'SCMP_ACT_ALLOW' },
      { names: ['bpf'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    ],
  };
  const profile = ociSeccompProfile(base);

  it('denies the calls bwrap does not need and keeps the ones it builds namespaces with', () => {
    const allowed = profile.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names);
    expect(allowed.sort()).toEqual(['mount', 'read', 'unshare']);
    const denied = profile.syscalls.filter((r) => r.action === 'SCMP_ACT_ERRNO').flatMap((r) => r.names);
    for (const name of ['io_uring_setup', 'keyctl', 'bpf', 'perf_event_open', 'userfaultfd', 'init_module', 'kexec_load']) expect(denied).toContain(name);
    for (const name of ['mount', 'unshare', 'clone3', 'pivot_root']) expect(denied).not.toContain(name);
  });
});
