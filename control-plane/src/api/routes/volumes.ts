import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { VolumeService } from '../../volumes/service.js';
import { newRouter, type AppEnv } from '../router.js';
import { CreateIdempotencyHeaders, ErrorSchema } from '../schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const err = (description: string) => ({ description, content: { 'application/json': { schema: ErrorSchema } } });

export const VolumeSchema = z
  .object({
    id: z.string().openapi({ example: 'vol_3b1f...' }),
    name: z.string().openapi({ example: 'datasets' }),
    tenant: z.string(),
    sizeMB: z.number().openapi({ description: 'Its size: writes past it fail with ENOSPC in the sandbox (local: its own ext4 filesystem; synced: a tmpfs of this size), and a synced volume whose files add up to more is not stored (413 VolumeTooLarge)' }),
    createdAt: z.string(),
    mode: z.enum(['local', 'synced']).openapi({ description: '`local`: live-shared ext4 image on the local platform\'s host. `synced`: archives in the blob store, copied into each session (templates of every platform)' }),
    generation: z.number().optional().openapi({ description: 'Synced only: the current generation (0: never synced, empty); each sync makes the next' }),
    bytes: z.number().optional().openapi({ description: 'Synced only: bytes of the current generation\'s archive' }),
    syncedAt: z.string().optional().openapi({ description: 'Synced only: when the current generation was stored' }),
  })
  .openapi('Volume');

const CreateVolumeSchema = z
  .object({
    name: z.string().min(1).max(63).openapi({ description: 'Per tenant: lowercase letters, digits, ".", "_", "-", starting with a letter or digit', example: 'datasets' }),
    sizeMB: z.number().int().min(1).openapi({ description: 'At most KILN_VOLUME_MAX_MB (synced: at most 1024); counted against the tenant\'s KILN_QUOTA_VOLUME_MB (both modes)', example: 1024 }),
    mode: z.enum(['local', 'synced']).optional().openapi({ description: 'Default: `local` when KILN_PLATFORM is local, else `synced`. Fixed for the volume\'s life' }),
  })
  .strict()
  .openapi('CreateVolume');

const NameParam = z.object({ name: z.string().min(1).max(100).openapi({ param: { name: 'name', in: 'path' }, example: 'datasets' }) });

const errors = {
  400: err('InvalidRequest: a bad name or size'),
  404: err('VolumeNotFound (another tenant\'s volume is not found either)'),
  409: err('VolumeExists on create; VolumeInUse on delete while a live session mounts it, or on a session create that mounts a synced volume read-write while another session does'),
  429: err('QuotaExceeded: `data.quota` is `volumes` (count, KILN_QUOTA_VOLUMES) or `volumeMB` (total size, KILN_QUOTA_VOLUME_MB)'),
  503: err('Redis unavailable'),
};

export const volumesDoc =
  'Named volumes: data that outlives sessions, mounted into sessions at create (`volumes` on POST /api/v1/sessions), read-write or read-only. Two modes. ' +
  '**local**: an ext4 image of `sizeMB` on the executors\' host, loop-mounted; several sessions at once, read-write too, each write seen by the others at once (live-shared); local templates only. ' +
  '**synced**: the content is a tar archive per generation in the blob store (local disk or S3); each session gets a copy of the current generation in its sandbox (a tmpfs of `sizeMB`) at create, and its writes are stored as the next generation on POST /api/v1/sessions/{id}/volumes/{name}/sync, at hibernation and at the session\'s end (DELETE and the reaper\'s end: a sync that fails there is logged, the session ends, the volume stays at its previous generation). Consistency of synced volumes: one read-write session at a time (a second read-write mount is 409 VolumeInUse while the first is live); read-only mounts see the generation current at their create (a session restored from hibernation: the generation current at its restore); a sync whose files pass `sizeMB` is refused with 413 VolumeTooLarge and the previous generation stays; writes not yet synced are lost if the session\'s executor dies. Synced volumes mount on templates of every platform; a local volume on a docker or kubernetes template is 400 VolumesUnsupportedOnPlatform.';

const routes = {
  create: createRoute({ method: 'post', path: '/api/v1/volumes', tags: ['volumes'], summary: 'Create a volume', description: volumesDoc, request: { body: { required: true, content: { 'application/json': { schema: CreateVolumeSchema } } }, headers: CreateIdempotencyHeaders }, responses: { 201: json(VolumeSchema, 'Created'), ...errors } }),
  list: createRoute({ method: 'get', path: '/api/v1/volumes', tags: ['volumes'], summary: 'List the tenant\'s volumes', responses: { 200: json(z.object({ volumes: z.array(VolumeSchema) }), 'Volumes'), ...errors } }),
  get: createRoute({ method: 'get', path: '/api/v1/volumes/{name}', tags: ['volumes'], summary: 'Get a volume', request: { params: NameParam }, responses: { 200: json(VolumeSchema, 'The volume'), ...errors } }),
  delete: createRoute({ method: 'delete', path: '/api/v1/volumes/{name}', tags: ['volumes'], summary: 'Delete a volume and its data', description: '409 VolumeInUse while a live (running, paused or hibernated) session mounts it.', request: { params: NameParam }, responses: { 204: { description: 'Deleted' }, ...errors } }),
};

export function volumeRoutes(volumes: VolumeService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(routes.create, async (c) => c.json(await volumes.create(c.req.valid('json'), c.get('principal')), 201));
  app.openapi(routes.list, async (c) => c.json({ volumes: await volumes.list(c.get('principal')) }, 200));
  app.openapi(routes.get, async (c) => c.json(await volumes.get(c.req.valid('param').name, c.get('principal')), 200));
  app.openapi(routes.delete, async (c) => {
    await volumes.delete(c.req.valid('param').name, c.get('principal'));
    return c.body(null, 204);
  });
  return app;
}
