import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { FileInfo } from '@kiln/proto/executor/files';
import { FileType, type EntryInfoSchema } from '@kiln/proto/e2b/filesystem/filesystem_pb';
import type { SessionAgent } from '../../agent/session-client.js';
import { fromWorkspace } from './paths.js';

export type Entry = MessageInitShape<typeof EntryInfoSchema>;

/** ListDir and the watchers walk at most this many entries, so one call stays bounded. */
export const MAX_ENTRIES = 10_000;
const MAX_DEPTH = 32;

const TYPES: Record<string, FileType> = { file: FileType.FILE, dir: FileType.DIRECTORY, symlink: FileType.SYMLINK };

/** `ls -l` permission letters of a mode, as envd reports them. */
function permissions(type: string, mode: number): string {
  const kind = type === 'dir' ? 'd' : type === 'symlink' ? 'l' : '-';
  return kind + [0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1].map((bit, i) => (mode & bit ? 'rwx'[i % 3] : '-')).join('');
}

/** Kiln's file info as envd's EntryInfo, named by its E2B path (/home/user/...). Every file in a sandbox is its user's. */
export function entryOf(f: FileInfo): Entry {
  return {
    name: f.name,
    type: TYPES[f.type] ?? FileType.UNSPECIFIED,
    path: fromWorkspace(f.path),
    size: BigInt(f.size),
    mode: f.mode & 0o7777,
    permissions: permissions(f.type, f.mode),
    owner: 'user',
    group: 'user',
    modifiedTime: timestampFromMs(f.modifiedAtMs),
    ...(f.symlinkTarget ? { symlinkTarget: f.symlinkTarget } : {}),
  };
}

/**
 * A directory's entries down to `depth` levels (1: its own), depth first in name order, as
 * envd lists them. Links are listed, never followed (the executor's walk does not follow them).
 */
export async function walk(agent: SessionAgent, path: string, depth: number): Promise<FileInfo[]> {
  const out: FileInfo[] = [];
  const visit = async (dir: string, level: number): Promise<void> => {
    const entries = (await agent.list(dir)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (out.length >= MAX_ENTRIES) return;
      out.push(e);
      if (e.type === 'dir' && level < Math.min(depth, MAX_DEPTH)) await visit(e.path, level + 1);
    }
  };
  await visit(path, 1);
  return out;
}
