import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { KilnError } from '../errors.js';

/** One file of a code package, as the executor writes it under /var/task. */
export interface ZipEntry {
  path: string;
  content: Buffer;
  /** Unix permission bits (0o755 keeps `bootstrap` executable); 0o644 when the zip has none. */
  mode: number;
}

export interface ZipLimits {
  /** Cap on the sum of all entries' uncompressed sizes (a zip bomb stops here). */
  maxUncompressedBytes: number;
  maxEntries: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = { maxUncompressedBytes: 250 * 1024 * 1024, maxEntries: 10_000 };

/** The archive cannot be used as a code package; the message says which entry and why. */
export class InvalidZipError extends KilnError {
  constructor(detail: string) {
    super('InvalidZip', 400, `the code package is not a usable zip archive: ${detail}`);
  }
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const UNIX_HOST = 3;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** Rejects paths that would leave the task root or cannot be written there. */
function checkedPath(name: string): string {
  if (name.includes('\0') || name.includes('\\')) throw new InvalidZipError(`entry "${name}" has a NUL or backslash in its name`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw new InvalidZipError(`entry "${name}" has an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new InvalidZipError(`entry "${name}" has a ".." segment`);
  if (parts.length === 0) throw new InvalidZipError(`entry "${name}" has an empty path`);
  return parts.join('/');
}

function findEndOfCentralDirectory(buf: Buffer): number {
  // The record is 22 bytes plus a comment of up to 65535 bytes, so it sits near the end.
  const stop = Math.max(0, buf.length - 22 - 0xffff);
  for (let i = buf.length - 22; i >= stop; i--) {
    if (buf.readUInt32LE(i) === EOCD) return i;
  }
  throw new InvalidZipError('no end-of-central-directory record (is it a zip file?)');
}

/**
 * Reads a zip archive from its central directory (the authoritative list, as unzip does):
 * stored and deflated entries, unix modes from the external attributes, directories
 * skipped. Zip64, encryption, symlinks, duplicate names and paths escaping the root are
 * rejected, and the total uncompressed size is capped before and while inflating.
 */
export function readZip(buf: Buffer, limits: ZipLimits = DEFAULT_ZIP_LIMITS): ZipEntry[] {
  if (buf.length < 22) throw new InvalidZipError(`${buf.length} bytes is too short`);
  const eocd = findEndOfCentralDirectory(buf);
  const count = buf.readUInt16LE(eocd + 10);
  const cdSize = buf.readUInt32LE(eocd + 12);
  const cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new InvalidZipError('zip64 archives are not supported');
  if (count > limits.maxEntries) throw new InvalidZipError(`${count} entries; at most ${limits.maxEntries} are allowed`);
  if (cdOffset + cdSize > eocd) throw new InvalidZipError('the central directory lies outside the archive');

  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  let total = 0;
  let p = cdOffset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > eocd || buf.readUInt32LE(p) !== CENTRAL) throw new InvalidZipError(`central directory entry ${n} is corrupt`);
    const madeBy = buf.readUInt16LE(p + 4);
    const flags = buf.readUInt16LE(p + 8);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    const compressedSize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const external = buf.readUInt32LE(p + 38);
    const localOffset = buf.readUInt32LE(p + 42);
    const rawName = buf.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    p += 46 + nameLen + extraLen + commentLen;

    if (rawName.endsWith('/')) continue;
    const path = checkedPath(rawName);
    if (flags & 0x1) throw new InvalidZipError(`entry "${path}" is encrypted`);
    const unixMode = madeBy >> 8 === UNIX_HOST ? external >>> 16 : 0;
    if ((unixMode & S_IFMT) === S_IFLNK) throw new InvalidZipError(`entry "${path}" is a symbolic link`);
    if (seen.has(path)) throw new InvalidZipError(`entry "${path}" appears twice`);
    seen.add(path);
    total += size;
    if (total > limits.maxUncompressedBytes) throw new InvalidZipError(`uncompressed size exceeds ${limits.maxUncompressedBytes} bytes`);

    if (localOffset + 30 > buf.length || buf.readUInt32LE(localOffset) !== LOCAL) throw new InvalidZipError(`local header of "${path}" is corrupt`);
    const dataStart = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    if (dataStart + compressedSize > buf.length) throw new InvalidZipError(`data of "${path}" is truncated`);
    const data = buf.subarray(dataStart, dataStart + compressedSize);
    let content: Buffer;
    if (method === 0) content = Buffer.from(data);
    else if (method === 8) {
      try {
        // maxOutputLength stops an entry that lies about its size from inflating without bound.
        content = inflateRawSync(data, { maxOutputLength: Math.max(size, 1) });
      } catch (err) {
        throw new InvalidZipError(`entry "${path}" does not inflate: ${(err as Error).message}`);
      }
    } else throw new InvalidZipError(`entry "${path}" uses compression method ${method}; only stored (0) and deflate (8) are supported`);
    if (content.length !== size) throw new InvalidZipError(`entry "${path}" is ${content.length} bytes, not the ${size} its header says`);
    if (crc32(content) !== crc) throw new InvalidZipError(`entry "${path}" fails its CRC check`);
    const perm = unixMode & 0o777;
    entries.push({ path, content, mode: perm === 0 ? 0o644 : perm });
  }
  return entries;
}

/**
 * A zip archive of a code package (GetFunction's Code.Location): deflated entries with their unix
 * modes (made by "unix", as `zip -X`), what readZip reads back. Packages are at most 250 MB
 * unpacked, below zip64's limits.
 */
export function writeZip(entries: ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.path, 'utf8');
    const data = deflateRawSync(e.content);
    const crc = crc32(e.content);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(LOCAL, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(e.content.length, 22);
    local.writeUInt16LE(name.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(CENTRAL, 0);
    central.writeUInt16LE((UNIX_HOST << 8) | 20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(e.content.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((0o100000 | (e.mode & 0o7777)) << 16) >>> 0, 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, data);
    centrals.push(central, name);
    offset += local.length + name.length + data.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(EOCD, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
