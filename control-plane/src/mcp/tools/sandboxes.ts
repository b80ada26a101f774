import { z } from 'zod';
import { ValidationError } from '../../errors.js';
import type { SessionView } from '../../sessions/service.js';
import { defineTool, sandboxIdOf, type ToolDef } from '../context.js';
import { ok } from '../results.js';

const id = {
  sandbox_id: z.string().min(1).max(100).optional().describe('Id of the sandbox ("ses_..."), as returned by sandbox_create or sandbox_list.'),
  sandboxId: z.string().min(1).max(100).optional().describe('Same as sandbox_id (either spelling is accepted).'),
};

function line(s: SessionView): string {
  const labels = Object.entries(s.metadata).map(([k, v]) => `${k}=${v}`).join(' ');
  return `${s.id} template=${s.template} expires=${s.expiresAt} idleTimeoutMs=${s.idleTimeoutMs}${labels ? ` ${labels}` : ''}`;
}

/** The id argument is optional in the schema (two spellings) but required here. */
function required(a: { sandbox_id?: string | undefined; sandboxId?: string | undefined }): string {
  const given = sandboxIdOf(a);
  if (given) return given;
  // A schema-level refine would hide both properties from the JSON schema agents read.
  throw new ValidationError('sandbox_id is required: pass the id returned by sandbox_create or sandbox_list', { field: 'sandbox_id' });
}

const sandboxCreate = defineTool({
  name: 'sandbox_create',
  scope: 'sessions',
  title: 'Create a sandbox',
  description:
    'Creates a sandbox (a Kiln session: an isolated Linux environment with a persistent /workspace, leased from a warm pool, so it is ready in milliseconds). ' +
    'It lives until sandbox_delete, its timeout, or idle_timeout_ms without any tool call. Pass its sandboxId to the process_* and file_* tools.',
  inputSchema: {
    template: z.string().optional().describe('Template to create it from, e.g. "nodejs", "python" or "shell" (default "nodejs").'),
    timeout_ms: z.number().int().min(1000).optional().describe('Lifetime in milliseconds from now (default 3600000, at most 86400000).'),
    idle_timeout_ms: z.number().int().min(1000).optional().describe('Ended after this long without activity (default 600000).'),
    env: z.record(z.string()).optional().describe('Environment variables of every process in the sandbox.'),
    metadata: z.record(z.string()).optional().describe('Labels to find it by later with sandbox_list, e.g. {"task": "build"}.'),
    volumes: z
      .array(
        z
          .object({
            name: z.string().min(1).max(63).describe('Name of one of your volumes (made with POST /api/v1/volumes).'),
            path: z.string().min(1).max(256).describe('Where it appears in the sandbox: under /mnt/, e.g. "/mnt/data".'),
            readOnly: z.boolean().optional().describe('Mount it read-only (default false).'),
          })
          .strict(),
      )
      .max(8)
      .optional()
      .describe('Named volumes to mount, as REST\'s `volumes` (at most 8; data there outlives the sandbox). A sandbox with volumes boots cold, not from the warm pool.'),
  },
  async run(a, ctx) {
    const s = await ctx.services.sessions.create({
      // Checked by the same service call as REST's (volumes/service.ts mountsFor): paths, tenancy, platform.
      ...(a.volumes?.length ? { volumes: a.volumes.map((v) => ({ name: v.name, path: v.path, ...(v.readOnly !== undefined ? { readOnly: v.readOnly } : {}) })) } : {}),
      ...(a.template ? { template: a.template } : {}),
      ...(a.timeout_ms ? { timeoutMs: a.timeout_ms } : {}),
      ...(a.idle_timeout_ms ? { idleTimeoutMs: a.idle_timeout_ms } : {}),
      ...(a.env ? { env: a.env } : {}),
      // The caller's labels are set last, so a sandbox always says which client made it.
      metadata: { ...a.metadata, ...ctx.callerMetadata() },
    }, ctx.principal);
    return ok({ sandboxId: s.id, ...s }, `Created sandbox ${s.id} (template ${s.template}, expires ${s.expiresAt}).`);
  },
});

const sandboxGet = defineTool({
  name: 'sandbox_get',
  scope: 'read',
  title: 'Get a sandbox',
  description: 'Returns a sandbox\'s template, creation and expiry times, idle timeout and metadata.',
  inputSchema: id,
  annotations: { readOnlyHint: true },
  async run(a, ctx) {
    const s = await ctx.services.sessions.get(required(a), ctx.principal);
    return ok({ sandboxId: s.id, ...s }, line(s));
  },
});

const sandboxList = defineTool({
  name: 'sandbox_list',
  scope: 'read',
  title: 'List sandboxes',
  description: 'Lists running sandboxes, oldest first, optionally only those of a template and whose metadata has every given key=value.',
  inputSchema: {
    template: z.string().optional().describe('Only sandboxes of this template.'),
    metadata: z.record(z.string()).optional().describe('Only sandboxes whose metadata has all these key=value pairs.'),
  },
  annotations: { readOnlyHint: true },
  async run(a, ctx) {
    const sandboxes = await ctx.services.sessions.list({ ...(a.template ? { template: a.template } : {}), ...(a.metadata ? { metadata: a.metadata } : {}) }, ctx.principal);
    return ok({ sandboxes }, sandboxes.length ? sandboxes.map(line).join('\n') : 'No sandboxes match.');
  },
});

const sandboxDelete = defineTool({
  name: 'sandbox_delete',
  scope: 'sessions',
  title: 'Delete a sandbox',
  description: 'Ends a sandbox: every process in it is killed and its /workspace is discarded.',
  inputSchema: id,
  annotations: { destructiveHint: true },
  async run(a, ctx) {
    const sandboxId = required(a);
    await ctx.services.sessions.delete(sandboxId, ctx.principal, 'deleted through mcp');
    return ok({ sandboxId, deleted: true }, `Deleted sandbox ${sandboxId}.`);
  },
});

/** Sandbox lifecycle tools (full profile); a sandbox is a Kiln session. */
export const sandboxTools: ToolDef[] = [sandboxCreate, sandboxGet, sandboxList, sandboxDelete];
