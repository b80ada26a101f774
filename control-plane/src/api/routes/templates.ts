import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { ValidationError } from '../../errors.js';
import type { TemplateAdmin } from '../../templates/admin.js';
import { templateSchema } from '../../templates/template.js';
import { newRouter, type AppEnv } from '../router.js';
import { ErrorSchema } from '../schemas.js';

const TemplateSchema = templateSchema.openapi('Template');
/** PUT takes the whole template; the name comes from the path (a different one in the body is an error). */
const TemplateUpdateSchema = templateSchema.extend({ name: templateSchema.shape.name.optional() }).openapi('TemplateUpdate');
const NameParam = z.object({ name: z.string().openapi({ param: { name: 'name', in: 'path' }, example: 'nodejs' }) });

const err = (description: string) => ({ description, content: { 'application/json': { schema: ErrorSchema } } });
const one = (description: string) => ({ description, content: { 'application/json': { schema: TemplateSchema } } });

const list = createRoute({
  method: 'get',
  path: '/api/v1/templates',
  tags: ['templates'],
  summary: 'List templates',
  responses: { 200: { description: 'Every template', content: { 'application/json': { schema: z.object({ templates: z.array(TemplateSchema) }) } } } },
});

const create = createRoute({
  method: 'post',
  path: '/api/v1/templates',
  tags: ['templates'],
  summary: 'Create a template',
  description: 'Stores the template; every control plane starts its queue worker and the pool keeper boots `pool.minIdle` sandboxes.',
  request: { body: { required: true, content: { 'application/json': { schema: TemplateSchema } } } },
  responses: { 201: one('Created'), 400: err('Invalid template'), 409: err('A template of that name exists') },
});

const get = createRoute({
  method: 'get',
  path: '/api/v1/templates/{name}',
  tags: ['templates'],
  summary: 'Get a template',
  request: { params: NameParam },
  responses: { 200: one('The template'), 404: err('Unknown template') },
});

const update = createRoute({
  method: 'put',
  path: '/api/v1/templates/{name}',
  tags: ['templates'],
  summary: 'Replace a template',
  description: 'Pool sizes and the queue limit apply from the next keeper round; running sandboxes keep their resources until they are replaced.',
  request: { params: NameParam, body: { required: true, content: { 'application/json': { schema: TemplateUpdateSchema } } } },
  responses: { 200: one('Replaced'), 400: err('Invalid template'), 404: err('Unknown template') },
});

const remove = createRoute({
  method: 'delete',
  path: '/api/v1/templates/{name}',
  tags: ['templates'],
  summary: 'Delete a template',
  description: 'Refused with 409 while jobs are queued or running on it or any of its sandboxes is leased. Its executors are stopped.',
  request: { params: NameParam },
  responses: { 204: { description: 'Deleted' }, 404: err('Unknown template'), 409: err('Template in use') },
});

/** Thin edge: parse, call TemplateAdmin, map the result. */
export function templateRoutes(admin: TemplateAdmin): OpenAPIHono<AppEnv> {
  const app = newRouter();
  app.openapi(list, (c) => c.json({ templates: admin.list() }, 200));
  app.openapi(create, async (c) => c.json(await admin.create(c.req.valid('json')), 201));
  app.openapi(get, (c) => c.json(admin.get(c.req.valid('param').name), 200));
  app.openapi(update, async (c) => {
    const { name } = c.req.valid('param');
    const body = c.req.valid('json');
    if (body.name !== undefined && body.name !== name)
      throw new ValidationError(`name in the body ("${body.name}") must match the path ("${name}") or be left out`);
    return c.json(await admin.update({ ...body, name }), 200);
  });
  app.openapi(remove, async (c) => {
    await admin.remove(c.req.valid('param').name);
    return c.body(null, 204);
  });
  return app;
}
