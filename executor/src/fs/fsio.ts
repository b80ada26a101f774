/**
 * Thin promise wrappers over descriptor-based fs calls (numeric fds, bigint
 * stats), and the Linux-specific bits needed to emulate the *at() syscalls
 * that Node lacks.
 */
import * as fs from 'node:fs';
import type { BigIntStats } from 'node:fs';

/**
 * O_PATH (Linux, same value on x86-64 and arm64): an fd that pins an inode
 * without opening it for I/O. Node does not export the constant.
 */
export const O_PATH = 0o10000000;
export const { O_NOFOLLOW, O_DIRECTORY, O_CREAT, O_EXCL, O_RDWR, O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;

/**
 * `/proc/self/fd/<fd>/<name>` resolves `name` inside the directory the fd
 * pins, like openat(fd, name): no path component above it is re-walked, so
 * a concurrently swapped-in symlink higher up cannot redirect us.
 */
export const procPath = (fd: number, name?: string): string => (name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`);

export function openFd(path: string, flags: number, mode = 0o666): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, mode, (e, fd) => (e ? reject(e) : resolve(fd))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => fs.close(fd, () => resolve()));
}

export function fstatFd(fd: number): Promise<BigIntStats> {
  return new Promise((resolve, reject) => fs.fstat(fd, { bigint: true }, (e, st) => (e ? reject(e) : resolve(st))));
}

export function lstatPath(path: string): Promise<BigIntStats> {
  return fs.promises.lstat(path, { bigint: true });
}

/** Positional read; returns bytes read (short only at EOF). */
export function preadFd(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, pos, (e, n) => (e ? reject(e) : resolve(n))));
}

/** Positional write of the whole buffer (loops on short writes). */
export async function pwriteFd(fd: number, buf: Buffer, pos: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const n = await new Promise<number>((resolve, reject) => fs.write(fd, buf, off, buf.length - off, pos + off, (e, w) => (e ? reject(e) : resolve(w))));
    if (n <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    off += n;
  }
}

export function ftruncateFd(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, len, (e) => (e ? reject(e) : resolve())));
}

export function fdatasyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
}

/** Identity of an inode within the host: the node registry key. */
export const inodeKey = (st: { dev: bigint; ino: bigint }): string => `${st.dev}:${st.ino}`;

/** True when this process may chown files to arbitrary owners. */
export const isRoot = (): boolean => process.getuid?.() === 0;
