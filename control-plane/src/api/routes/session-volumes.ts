import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { SessionService } from '../../sessions/service.js';
import { newRouter, type AppEnv } from '../router.js';
import { ErrorSchema } from '../schemas.js';
import { SessionIdParam } from './session-schemas.js';
import { VolumeSchema, volumesDoc } from './volumes.js';

const err = (description: string) => ({ description, content: { 'application/json': { schema: ErrorSchema } } });

const Params = SessionIdParam.extend({ name: z.string().min(1).max(100).openapi({ param: { name: 'name', in: 'path' }, example: 'userdata' }) });

const sync = createRoute({
  method: 'post',
  path: '/api/v1/sessions/{id}/volumes/{name}/sync',
  tags: ['volumes'],
  summary: 'Store a session\'s synced volume as its next generation',
  description: `Packs the volume as the session sees it now (tar inside the sandbox) and stores it as the volume's next generation: the new archive is written first, then the volume's record moves to it in one step, then the previous archive is deleted; a failure on the way leaves the previous generation current. Answers the volume after. Only for a synced volume this session mounts read-write. ${volumesDoc}`,
  request: { params: Params },
  responses: {
    200: { description: 'Stored', content: { 'application/json': { schema: VolumeSchema } } },
    404: err('SessionNotFound or VolumeNotFound (the session mounts no volume of that name; another tenant\'s session is not found either)'),
    409: err('VolumeNotSynced (a local volume, or mounted read-only), VolumeSyncConflict (the volume was deleted meanwhile, or this session no longer holds it for writing), SessionPaused'),
    413: err('VolumeTooLarge: its files pass sizeMB (a sparse file counts at its full length); nothing was stored'),
    504: err('VolumeSyncStalled: the archive sent no byte for KILN_VOLUME_SYNC_IDLE_MS, or took longer than its size allows (the tar runs inside the sandbox, whose code can stop it); nothing was stored'),
    503: err('Redis or the blob store unavailable, or VolumeTransfersBusy: archives in flight already hold this replica\'s KILN_VOLUME_TRANSFER_MEMORY_MB (retry; Retry-After)'),
  },
});

/** The on-demand sync of synced volumes (volumes/synced.ts). Thin: the session service does it. */
export function sessionVolumeRoutes(sessions: SessionService): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(sync, async (c) => {
    const { id, name } = c.req.valid('param');
    return c.json(await sessions.syncVolume(id, name, c.get('principal')), 200);
  });
  return app;
}
