import { z } from 'zod';
import type { SessionView } from '../../sessions/service.js';
import type { SnapshotView } from '../../sessions/snapshots.js';
import { defineTool, sandboxIdOf, type ToolDef } from '../context.js';
import { ok } from '../results.js';

/**
 * Pause/resume, snapshots and forks as MCP tools (the `lifecycle` profile): thin edges over
 * SessionLifecycle and SnapshotService, the services the REST routes call, with the same
 * ownership checks (another tenant's sandbox or snapshot is SessionNotFound/SnapshotNotFound).
 */

const id = {
  sandbox_id: z.string().min(1).max(100).optional().describe('Id of the sandbox ("ses_..."); omitted, this MCP session\'s own sandbox.'),
  sandboxId: z.string().min(1).max(100).optional().describe('Same as sandbox_id (either spelling is accepted).'),
};

const snapshotId = z.string().min(1).max(100).describe('Id of the snapshot ("snap_..."), as returned by snapshot_create or snapshot_list.');

const snapLine = (s: SnapshotView): string => `${s.id} name=${s.name} template=${s.template} from=${s.sessionId} bytes=${s.bytes} created=${s.createdAt}`;
const sessionLine = (s: SessionView): string => `${s.id} template=${s.template} expires=${s.expiresAt}`;

const sandboxPause = defineTool({
  name: 'sandbox_pause',
  scope: 'sessions',
  title: 'Pause a sandbox',
  description:
    'Freezes every process of a sandbox: memory, open files and terminals are kept, CPU use stops, and paused time does not count against its timeout. ' +
    'Any later tool call on it (or sandbox_resume) thaws it where it was, unless it was created with autoResume false.',
  inputSchema: id,
  annotations: { idempotentHint: true },
  async run(a, ctx) {
    const { id: sandboxId } = await ctx.sandbox(sandboxIdOf(a));
    const r = await ctx.services.lifecycle.sessions.pause(sandboxId, ctx.principal);
    return ok({ sandboxId, status: r.session.status, tookMs: r.tookMs }, `Paused sandbox ${sandboxId}.`);
  },
});

const sandboxResume = defineTool({
  name: 'sandbox_resume',
  scope: 'sessions',
  title: 'Resume a paused sandbox',
  description:
    'Resumes a paused sandbox. resumeType "thawed": its processes go on where they were; "restored": it had been hibernated, so its /workspace files were restored into a new sandbox and its processes did not survive.',
  inputSchema: id,
  annotations: { idempotentHint: true },
  async run(a, ctx) {
    const { id: sandboxId } = await ctx.sandbox(sandboxIdOf(a));
    const r = await ctx.services.lifecycle.sessions.resume(sandboxId, ctx.principal);
    const how = r.resumeType ? ` (${r.resumeType})` : ' (it was running)';
    return ok({ sandboxId, status: r.session.status, ...(r.resumeType ? { resumeType: r.resumeType } : {}), tookMs: r.tookMs }, `Resumed sandbox ${sandboxId}${how}.`);
  },
});

const snapshotCreate = defineTool({
  name: 'snapshot_create',
  scope: 'sessions',
  title: 'Snapshot a sandbox\'s /workspace',
  description: 'Saves the sandbox\'s /workspace as a named snapshot that outlives the sandbox; start new sandboxes from it with sandbox_create_from_snapshot. Processes and memory are not saved.',
  inputSchema: { ...id, name: z.string().min(1).max(128).optional().describe('A name to find it by in snapshot_list (default: generated).') },
  async run(a, ctx) {
    const { id: sandboxId } = await ctx.sandbox(sandboxIdOf(a));
    const s = await ctx.services.lifecycle.snapshots.create(sandboxId, a.name, ctx.principal);
    return ok({ snapshotId: s.id, ...s }, `Saved snapshot ${s.id} (${s.name}, ${s.bytes} bytes) of sandbox ${sandboxId}.`);
  },
});

const snapshotList = defineTool({
  name: 'snapshot_list',
  scope: 'read',
  title: 'List snapshots',
  description: 'Lists this tenant\'s snapshots with their names, templates, the sandbox each was taken from, sizes and creation times.',
  inputSchema: {},
  annotations: { readOnlyHint: true },
  async run(_a, ctx) {
    const snapshots = await ctx.services.lifecycle.snapshots.list(ctx.principal);
    return ok({ snapshots }, snapshots.length ? snapshots.map(snapLine).join('\n') : 'No snapshots.');
  },
});

const snapshotDelete = defineTool({
  name: 'snapshot_delete',
  scope: 'sessions',
  title: 'Delete a snapshot',
  description: 'Deletes a snapshot and its saved files. Sandboxes already started from it are not affected.',
  inputSchema: { snapshot_id: snapshotId },
  annotations: { destructiveHint: true, idempotentHint: true },
  async run(a, ctx) {
    await ctx.services.lifecycle.snapshots.delete(a.snapshot_id, ctx.principal);
    return ok({ snapshotId: a.snapshot_id, deleted: true }, `Deleted snapshot ${a.snapshot_id}.`);
  },
});

const sandboxFromSnapshot = defineTool({
  name: 'sandbox_create_from_snapshot',
  scope: 'sessions',
  title: 'Create a sandbox from a snapshot',
  description: 'Creates a new sandbox whose /workspace holds the files of a snapshot (of the snapshot\'s template unless another is given). Pass its sandboxId to the other tools.',
  inputSchema: {
    snapshot_id: snapshotId,
    template: z.string().optional().describe('Template to create it from (default: the snapshot\'s).'),
    timeout_ms: z.number().int().min(1000).optional().describe('Lifetime in milliseconds from now (default 3600000).'),
    idle_timeout_ms: z.number().int().min(1000).optional().describe('Ended after this long without activity (default 600000).'),
    metadata: z.record(z.string()).optional().describe('Labels to find it by later with sandbox_list.'),
  },
  async run(a, ctx) {
    const s = await ctx.services.lifecycle.snapshots.createSession(
      {
        fromSnapshot: a.snapshot_id,
        ...(a.template ? { template: a.template } : {}),
        ...(a.timeout_ms ? { timeoutMs: a.timeout_ms } : {}),
        ...(a.idle_timeout_ms ? { idleTimeoutMs: a.idle_timeout_ms } : {}),
        metadata: { ...a.metadata, ...ctx.callerMetadata() },
      },
      ctx.principal,
    );
    return ok({ sandboxId: s.id, ...s }, `Created sandbox ${s.id} from snapshot ${a.snapshot_id} (template ${s.template}, expires ${s.expiresAt}).`);
  },
});

const sandboxFork = defineTool({
  name: 'sandbox_fork',
  scope: 'sessions',
  title: 'Fork a sandbox',
  description:
    'Makes 1 to 10 new sandboxes, each with a copy of this sandbox\'s /workspace as it is now (processes are not copied), to try several approaches side by side. All or nothing. The new sandboxes are independent: delete them with sandbox_delete.',
  inputSchema: {
    ...id,
    count: z.number().int().min(1).max(10).optional().describe('How many copies (default 1, at most 10).'),
    timeout_ms: z.number().int().min(1000).optional().describe('Lifetime of each copy in milliseconds (default: the source\'s).'),
    metadata: z.record(z.string()).optional().describe('Labels added to the source\'s on each copy.'),
  },
  async run(a, ctx) {
    const { id: sandboxId } = await ctx.sandbox(sandboxIdOf(a));
    const made = await ctx.services.lifecycle.snapshots.fork(sandboxId, { count: a.count ?? 1, ...(a.timeout_ms ? { timeoutMs: a.timeout_ms } : {}), metadata: { ...a.metadata, ...ctx.callerMetadata(), 'mcp.forkedFrom': sandboxId } }, ctx.principal);
    return ok({ sandboxIds: made.map((s) => s.id), sandboxes: made }, `Forked sandbox ${sandboxId} into ${made.length}:\n${made.map(sessionLine).join('\n')}`);
  },
});

/** Lifecycle tools (profile `lifecycle`). */
export const lifecycleTools: ToolDef[] = [sandboxPause, sandboxResume, snapshotCreate, snapshotList, snapshotDelete, sandboxFromSnapshot, sandboxFork];
