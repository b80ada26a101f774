import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { VolumeService } from '../../volumes/service.js';
import { newRouter, type AppEnv } from '../router.js';
import { CreateIdempotencyHeaders, ErrorSchema } from '../schemas.js';

const json = <T extends z.ZodTypeAny>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
const err = (description: string) => ({ description, content: { 'application/json': { schema: ErrorSchema } } });

const VolumeSchema = z
  .object({
    id: z.string().openapi({ example: 'vol_3b1f...' }),
    name: z.string().openapi({ example: 'datasets' }),
    tenant: z.string(),
    sizeMB: z.number().openapi({ description: 'Its size: writes past it fail with ENOSPC in the sandbox (its own ext4 filesystem)' }),
    createdAt: z.string(),
  })
  .openapi('Volume');

const CreateVolumeSchema = z
  .object({
    name: z.string().min(1).max(63).openapi({ description: 'Per tenant: lowercase letters, digits, ".", "_", "-", starting with a letter or digit', example: 'datasets' }),
    sizeMB: z.number().int().min(1).openapi({ description: 'At most KILN_VOLUME_MAX_MB; counted against the tenant\'s KILN_QUOTA_VOLUME_MB', example: 1024 }),
  })
  .strict()
  .openapi('CreateVolume');

const NameParam = z.object({ name: z.string().min(1).max(100).openapi({ param: { name: 'name', in: 'path' }, example: 'datasets' }) });

const errors = {
  400: err('InvalidRequest: a bad name or size'),
  404: err('VolumeNotFound (another tenant\'s volume is not found either)'),
  409: err('VolumeExists on create; VolumeInUse on delete while a live session mounts it'),
  429: err('QuotaExceeded: `data.quota` is `volumes` (count, KILN_QUOTA_VOLUMES) or `volumeMB` (total size, KILN_QUOTA_VOLUME_MB)'),
  503: err('Redis unavailable'),
};

const doc =
  'Named volumes: data that outlives sessions, mounted into sessions at create (`volumes` on POST /api/v1/sessions), read-write or read-only, by several sessions at once. Each is an ext4 image of `sizeMB` on the executors\' host, loop-mounted; local platform only (docker and kubernetes templates refuse `volumes`).';

const routes = {
  create: createRoute({ method: 'post', path: '/api/v1/volumes', tags: ['volumes'], summary: 'Create a volume', description: doc, request: { body: { required: true, content: { 'application/json': { schema: CreateVolumeSchema } } }, headers: CreateIdempotencyHeaders }, responses: { 201: json(VolumeSchema, 'Created'), ...errors } }),
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
