import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkBlobKey, type BlobStore } from './blobs.js';

/**
 * Blobs as files below a directory (`<data dir>/blobs` by default): the embedded default, with
 * nothing to configure. Only the replicas that share that directory see the blobs, so several
 * control planes on several hosts need S3 (or KILN_BLOB_STORE=redis). Files are written to a
 * temporary name and renamed into place, so a reader sees a whole blob or none, and a crash
 * mid-write leaves only a `.tmp-*` file (removed with its folder). The directory is the
 * control plane's own (0700): sandboxes never see it.
 */
export class DiskBlobStore implements BlobStore {
  readonly description: string;

  constructor(private readonly root: string) {
    this.description = `disk:${root}`;
  }

  private pathOf(key: string): string {
    return join(this.root, ...checkBlobKey(key).split('/'));
  }

  async put(key: string, data: Buffer): Promise<void> {
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    try {
      await writeFile(tmp, data, { mode: 0o600 });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.pathOf(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  async deleteFolder(folder: string): Promise<void> {
    const dir = this.pathOf(folder);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // Only the folder's own blobs, as on the other adapters; the folder goes once it is empty.
    await Promise.all(entries.filter((e) => e.isFile()).map((e) => rm(join(dir, e.name), { force: true })));
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'ENOENT') throw err;
    });
  }
}
