/**
 * A control plane that dies between ending a hibernated session and deleting its workspace
 * archive must not leave the archive in the blob store for ever. The first half of `end()`
 * (the record's removal, sessions/records.ts) is run here on its own, as a crash right after it
 * would leave things; the archive must then be in the retired-blob set, and the sweep every
 * replica runs (storage/retired.ts) deletes it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SessionStore } from '@kiln/control-plane/sessions/records';
import { DiskBlobStore } from '@kiln/control-plane/storage/disk-blobs';
import { BlobRetirements } from '@kiln/control-plane/storage/retired';
import { Keys } from '@kiln/control-plane/store/keys';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln();
}, 120_000);
afterAll(async () => {
  await k?.stop();
});

it('hands a hibernated session\'s archive to the retired-blob sweep in the same step that removes its record', async () => {
  const res = await k.call('POST', '/api/v1/sessions', { template: 'nodejs' });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const id = res.body.id as string;
  const hib = await k.call('POST', `/api/v1/sessions/${id}/hibernate`);
  expect(hib.status, JSON.stringify(hib.body)).toBe(200);
  const blob = join(k.dataDir, 'blobs', 'hibernation', id);
  expect(existsSync(blob)).toBe(true);

  const keys = new Keys(k.prefix);
  // The crash: the record is gone, the archive's delete never ran.
  expect(await new SessionStore(k.redis, keys).remove(id)).toBe(true);
  expect(existsSync(blob)).toBe(true);
  expect(await k.redis.zscore(keys.retiredBlobs(), `hibernation/${id}`)).not.toBeNull();
  expect((await k.call('GET', `/api/v1/sessions/${id}`)).status).toBe(404);

  // Any replica's next sweep.
  const deleted = await new BlobRetirements(k.redis, keys.retiredBlobs(), new DiskBlobStore(join(k.dataDir, 'blobs'))).sweep();
  expect(deleted).toBeGreaterThanOrEqual(1);
  expect(existsSync(blob)).toBe(false);
  expect(await k.redis.zscore(keys.retiredBlobs(), `hibernation/${id}`)).toBeNull();
}, 120_000);
