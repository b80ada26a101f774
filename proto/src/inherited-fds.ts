import { closeSync, readdirSync, readFileSync } from 'node:fs';

/** O_CLOEXEC in the octal `flags:` line of /proc/self/fdinfo/<fd> (asm-generic/fcntl.h). */
const O_CLOEXEC = 0o2000000;

/**
 * Closes every file descriptor above stderr that this process inherited without close-on-exec,
 * and returns their numbers. Call it first thing at start-up.
 *
 * Why: a shell that starts Kiln with, say, `5>file` or a pipe leaves fd 5 open, and libuv's
 * spawn does not close descriptors that lack O_CLOEXEC, so it would reach every executor,
 * bubblewrap and every sandbox. Everything Node and libuv open is close-on-exec, so what is left
 * is what we were handed. Node's IPC channel (NODE_CHANNEL_FD, when a parent forked us with
 * 'ipc') is kept.
 */
export function closeInheritedFds(): number[] {
  const keep = new Set([0, 1, 2]);
  const channel = Number(process.env.NODE_CHANNEL_FD);
  if (Number.isInteger(channel)) keep.add(channel);
  const closed: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc/self/fd');
  } catch {
    return closed; // no /proc (not Linux): nothing we can inspect
  }
  for (const name of entries) {
    const fd = Number(name);
    if (!Number.isInteger(fd) || keep.has(fd)) continue;
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // the directory listing's own fd, closed by now
    }
    const flags = /^flags:\s*([0-7]+)/m.exec(info)?.[1];
    if (flags === undefined || (parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
    closeSync(fd);
    closed.push(fd);
  }
  return closed;
}
