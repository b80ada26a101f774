import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { PtyTickets } from '../../sessions/pty-tickets.js';
import type { SessionService } from '../../sessions/service.js';
import { ErrorSchema } from '../schemas.js';
import { newRouter, type AppEnv } from '../router.js';
import { json } from './functions.js';

const route = createRoute({
  method: 'post',
  path: '/api/v1/sessions/{id}/pty-ticket',
  tags: ['sessions'],
  summary: 'A one-use ticket that opens this session\'s terminal from a browser',
  description:
    'Browsers cannot send headers on a WebSocket. Open `GET /api/v1/sessions/{id}/pty` offering the subprotocols `kiln.pty` and `kiln.ticket.<ticket>` within `expiresInMs`; the ticket works once, for this session only, as the key that asked for it.',
  request: { params: z.object({ id: z.string().max(200).openapi({ param: { name: 'id', in: 'path' } }) }) },
  responses: {
    201: json(z.object({ ticket: z.string(), expiresInMs: z.number() }).openapi('PtyTicket'), 'The ticket'),
    404: { description: 'Unknown session (another tenant\'s too)', content: { 'application/json': { schema: ErrorSchema } } },
  },
});

/** Terminal tickets (sessions/pty-tickets.ts); ownership is checked before one is issued. */
export function ptyTicketRoutes(sessions: SessionService, tickets: PtyTickets): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(route, async (c) => {
    const { id } = c.req.valid('param');
    await sessions.get(id, c.get('principal'));
    return c.json(await tickets.issue(id, c.get('principal')), 201);
  });
  return app;
}
