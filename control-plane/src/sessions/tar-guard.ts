import { KilnError } from '../errors.js';

/**
 * A workspace archive (snapshot, hibernation, fork) that Kiln refuses to unpack: an entry leaves
 * the directory it is unpacked in, passes through a symlink, or is a device. The archive is
 * not one Kiln made (its stored copy was changed), so a fault of the deployment: 500. Nothing of it was written.
 */
export class UnsafeArchiveError extends KilnError {
  constructor(reason: string, entry: string) {
    super('UnsafeArchive', 500, `the workspace archive was refused: ${reason} (entry ${JSON.stringify(entry.slice(0, 200))}); nothing was extracted`, { reason, entry: entry.slice(0, 200) });
  }
}

const BLOCK = 512;
/** Entry types Kiln's own archives contain: files, hard links, symlinks, directories, FIFOs; and the extension headers. */
const ALLOWED = new Set(['0', '\0', '7', '1', '2', '5', '6', 'x', 'g', 'L', 'K']);

function text(b: Buffer, start: number, len: number): string {
  const field = b.subarray(start, start + len);
  const nul = field.indexOf(0);
  return (nul < 0 ? field : field.subarray(0, nul)).toString('utf8');
}

function octal(b: Buffer, start: number, len: number): number {
  const first = b[start] ?? 0;
  // GNU base-256 for values past the octal field's range: a set high bit, then big-endian bytes.
  if (first & 0x80) {
    let n = first & 0x7f;
    for (let i = 1; i < len; i++) n = n * 256 + (b[start + i] ?? 0);
    return n;
  }
  const t = text(b, start, len).trim();
  if (t !== '' && !/^[0-7]+$/.test(t)) throw new UnsafeArchiveError('a header field is not a number', t);
  return t === '' ? 0 : parseInt(t, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
  return sum === octal(h, 148, 8);
}

/** pax records: "<len> key=value\n" ... */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space < 0) break;
    const len = Number(data.subarray(at, space).toString());
    if (!Number.isInteger(len) || len <= 0 || at + len > data.length) throw new UnsafeArchiveError('a pax header is malformed', '');
    const rec = data.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    at += len;
  }
  return out;
}

/**
 * The entry's path relative to the extraction directory, without `./` prefixes or a trailing
 * slash ('' is the directory itself), or an UnsafeArchiveError for an absolute path, a `..`
 * component or a NUL.
 */
export function entryPath(name: string): string {
  if (name.includes('\0')) throw new UnsafeArchiveError('an entry name holds a NUL byte', name);
  if (name.startsWith('/')) throw new UnsafeArchiveError('an entry name is absolute', name);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnsafeArchiveError('an entry name has a ".." component', name);
  return parts.join('/');
}

/**
 * Checks every entry of a tar archive before any of it is unpacked. Refused: absolute names,
 * `..` components, names below an earlier symlink entry of the same archive (the classic "link
 * then write through it" escape), hard links whose target is unsafe in the same ways, device
 * nodes and entry types Kiln never writes, bad checksums and truncation. Symlink targets
 * themselves may point anywhere: they are created inside the sandbox, where `/etc` is the
 * sandbox's read-only one, and are never followed by Kiln on the host.
 *
 * Returns the number of entries. The archive is also unpacked by tar inside the sandbox as its
 * user (executor files-service), so this is the second of two barriers, not the only one.
 */
export function checkTar(tar: Buffer): number {
  const symlinks = new Set<string>();
  let pending: { path?: string; linkpath?: string } = {};
  let entries = 0;
  let at = 0;
  const throughSymlink = (p: string): boolean => {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) if (symlinks.has(parts.slice(0, i).join('/'))) return true;
    return false;
  };
  for (;;) {
    if (at + BLOCK > tar.length) throw new UnsafeArchiveError('the archive is truncated', '');
    const h = tar.subarray(at, at + BLOCK);
    if (h.every((byte) => byte === 0)) return entries;
    if (!checksumOk(h)) throw new UnsafeArchiveError('a header checksum is wrong', text(h, 0, 100));
    const type = String.fromCharCode(h[156] as number);
    const size = octal(h, 124, 12);
    const dataStart = at + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > tar.length) throw new UnsafeArchiveError('the archive is truncated', text(h, 0, 100));
    at = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    const data = tar.subarray(dataStart, dataEnd);
    const ustar = text(h, 257, 6) === 'ustar';
    const headerName = ustar && text(h, 345, 155) ? `${text(h, 345, 155)}/${text(h, 0, 100)}` : text(h, 0, 100);
    if (!ALLOWED.has(type)) throw new UnsafeArchiveError(`entry type "${type}" (devices and special entries) is not allowed`, headerName);
    if (type === 'x' || type === 'g') {
      const recs = paxRecords(data);
      if (type === 'g' && (recs.has('path') || recs.has('linkpath'))) throw new UnsafeArchiveError('a global pax header names a path', recs.get('path') ?? '');
      if (recs.has('path')) pending.path = recs.get('path');
      if (recs.has('linkpath')) pending.linkpath = recs.get('linkpath');
      continue;
    }
    if (type === 'L' || type === 'K') {
      const nul = data.indexOf(0);
      const value = (nul < 0 ? data : data.subarray(0, nul)).toString('utf8');
      if (type === 'L') pending.path = value;
      else pending.linkpath = value;
      continue;
    }
    const name = pending.path ?? headerName;
    const link = pending.linkpath ?? text(h, 157, 100);
    pending = {};
    const path = entryPath(name);
    if (path === '' && type !== '5') throw new UnsafeArchiveError('only a directory may stand for the extraction directory itself', name);
    if (throughSymlink(path) || (symlinks.has(path) && type !== '2')) throw new UnsafeArchiveError('an entry is written through a symlink of the archive', name);
    if (type === '1') {
      const target = entryPath(link);
      if (target === '' || throughSymlink(target) || symlinks.has(target)) throw new UnsafeArchiveError('a hard link points outside the archive\'s files', `${name} -> ${link}`);
    }
    if (type === '2') symlinks.add(path);
    entries++;
  }
}
