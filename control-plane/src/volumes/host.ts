import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TENANT_KEY, VOLUME_ID } from '@kiln/executor/volumes';
import { unmountBelow } from '@kiln/executor/mounts';

/**
 * Removes a deleted volume from the host: its image is detached from its mount point (lazily:
 * a sandbox still ending keeps the filesystem until its mount namespace goes, and the loop
 * device goes with the last reference) and its directory is deleted. The directory is made only
 * of (tenant key, volume id), both checked, and `rm` does not follow the links a sandbox may
 * have left inside the volume. Called once the record is gone, so no session mounts it again.
 */
export async function deleteVolumeOnHost(hostDir: string, tenantKey: string, volumeId: string): Promise<void> {
  if (!TENANT_KEY.test(tenantKey) || !VOLUME_ID.test(volumeId)) throw new Error(`not a volume: ${tenantKey}/${volumeId}`);
  const dir = join(hostDir, tenantKey, volumeId);
  const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (!st) return;
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory; left as it is`);
  await unmountBelow(dir);
  await rm(dir, { recursive: true, force: true });
}
