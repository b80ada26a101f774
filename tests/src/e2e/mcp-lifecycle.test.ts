import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

/**
 * The `lifecycle` MCP profile through the official client: pause/resume, snapshots, sandboxes
 * from snapshots and forks, each tool scoped like its REST route, and another tenant's
 * sandboxes and snapshots as missing as unknown ids.
 */
const ALPHA = 'mcp-life-alpha-0123456789abcdef';
const BETA = 'mcp-life-beta-0123456789abcdef0';
const ADMIN = 'mcp-life-admin-0123456789abcdef';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({
    templates: { nodejs: { pool: { minIdle: 2, sandboxesPerExecutor: 8 } }, python: null, shell: null, provided: null },
    env: { KILN_API_KEYS: `alpha:${ALPHA},beta:${BETA}`, KILN_ADMIN_API_KEYS: ADMIN, KILN_SESSION_HIBERNATE_AFTER_MS: '0' },
  });
});
afterAll(async () => {
  await k?.stop();
});

type Result = { isError?: boolean; structuredContent?: any; content: Array<{ type: string; text?: string }> };

async function withClient<T>(key: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/lifecycle`), { requestInit: { headers: { authorization: `Bearer ${key}` } } });
  const client = new Client({ name: 'lifecycle-test', version: '1.0.0' });
  await client.connect(transport);
  try {
    return await fn(client);
  } finally {
    await transport.terminateSession().catch(() => undefined);
    await client.close();
  }
}
const call = async (c: Client, name: string, args: Record<string, unknown> = {}): Promise<Result> => (await c.callTool({ name, arguments: args })) as Result;
const okCall = async (c: Client, name: string, args: Record<string, unknown> = {}): Promise<any> => {
  const r = await call(c, name, args);
  expect(r.isError, `${name}: ${r.content.map((x) => x.text).join('\n')}`).toBeFalsy();
  return r.structuredContent;
};
const stdout = async (c: Client, sandbox_id: string, command: string): Promise<string> => ((await okCall(c, 'process_run', { sandbox_id, command })) as { stdout: string }).stdout;
const state = async (id: string): Promise<string> => (await k.call('GET', `/api/v1/sessions/${id}`, undefined, { authorization: `Bearer ${ALPHA}` })).body.status as string;

describe('MCP lifecycle profile', () => {
  it('lists its tools, each described', async () => {
    await withClient(ALPHA, async (c) => {
      const { tools } = await c.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(
        ['file_list', 'file_read', 'file_write', 'process_run', 'sandbox_create', 'sandbox_create_from_snapshot', 'sandbox_delete', 'sandbox_fork', 'sandbox_get', 'sandbox_list', 'sandbox_pause', 'sandbox_resume', 'snapshot_create', 'snapshot_delete', 'snapshot_list'].sort(),
      );
      for (const t of tools) {
        expect(t.description?.length, t.name).toBeGreaterThan(40);
        for (const [prop, schema] of Object.entries(t.inputSchema.properties ?? {})) expect((schema as { description?: string }).description, `${t.name}.${prop}`).toBeTruthy();
      }
    });
  });

  it('pauses and resumes a sandbox (its background counter goes on after), snapshots it, starts a sandbox from the snapshot and forks it', { timeout: 180_000 }, async () => {
    await withClient(ALPHA, async (c) => {
      const made: string[] = [];
      const id = ((await okCall(c, 'sandbox_create', { timeout_ms: 300_000 })) as { sandboxId: string }).sandboxId;
      made.push(id);
      try {
        await okCall(c, 'file_write', { sandbox_id: id, path: 'plan.txt', content: 'v1' });
        await okCall(c, 'process_run', { sandbox_id: id, command: 'while :; do echo x >> /workspace/ticks; sleep 0.1; done', background: true });
        const paused = await okCall(c, 'sandbox_pause', { sandbox_id: id });
        expect(paused).toMatchObject({ sandboxId: id, status: 'paused' });
        expect(await state(id)).toBe('paused');
        const resumed = await okCall(c, 'sandbox_resume', { sandbox_id: id });
        expect(resumed).toMatchObject({ sandboxId: id, status: 'running', resumeType: 'thawed' });
        const before = Number(await stdout(c, id, 'wc -l < ticks'));
        await expect.poll(async () => Number(await stdout(c, id, 'wc -l < ticks')), { timeout: 30_000 }).toBeGreaterThan(before);

        // A tool call on a paused sandbox resumes it (autoResume).
        await okCall(c, 'sandbox_pause', { sandbox_id: id });
        expect(await stdout(c, id, 'cat plan.txt')).toBe('v1');
        expect(await state(id)).toBe('running');

        const snap = await okCall(c, 'snapshot_create', { sandbox_id: id, name: 'mcp-v1' });
        expect(snap).toMatchObject({ snapshotId: expect.stringMatching(/^snap_/), name: 'mcp-v1', sessionId: id, tenant: 'alpha' });
        expect(((await okCall(c, 'snapshot_list')) as { snapshots: Array<{ id: string }> }).snapshots.map((s) => s.id)).toContain(snap.snapshotId);
        await okCall(c, 'file_write', { sandbox_id: id, path: 'plan.txt', content: 'v2' });

        const restored = ((await okCall(c, 'sandbox_create_from_snapshot', { snapshot_id: snap.snapshotId, timeout_ms: 120_000 })) as { sandboxId: string }).sandboxId;
        made.push(restored);
        expect(await stdout(c, restored, 'cat plan.txt')).toBe('v1');

        const fork = (await okCall(c, 'sandbox_fork', { sandbox_id: id, count: 2, timeout_ms: 120_000 })) as { sandboxIds: string[] };
        made.push(...fork.sandboxIds);
        expect(fork.sandboxIds).toHaveLength(2);
        await okCall(c, 'file_write', { sandbox_id: fork.sandboxIds[0], path: 'plan.txt', content: 'fork-a' });
        expect(await stdout(c, fork.sandboxIds[1] as string, 'cat plan.txt')).toBe('v2');
        expect(await stdout(c, fork.sandboxIds[0] as string, 'cat plan.txt')).toBe('fork-a');
        expect(await stdout(c, id, 'cat plan.txt')).toBe('v2');

        await okCall(c, 'snapshot_delete', { snapshot_id: snap.snapshotId });
        const gone = await call(c, 'sandbox_create_from_snapshot', { snapshot_id: snap.snapshotId });
        expect([gone.isError, gone.structuredContent?.error?.code]).toEqual([true, 'SnapshotNotFound']);
      } finally {
        for (const s of made) await k.call('DELETE', `/api/v1/sessions/${s}`, undefined, { authorization: `Bearer ${ALPHA}` });
      }
    });
  });

  it('gives another tenant SessionNotFound/SnapshotNotFound on every tool, and a read-only key cannot pause, snapshot or fork', { timeout: 120_000 }, async () => {
    const alpha = { authorization: `Bearer ${ALPHA}` };
    const s = await k.call('POST', '/api/v1/sessions', { template: 'nodejs', timeoutMs: 120_000 }, alpha);
    expect(s.status).toBe(201);
    const id = s.body.id as string;
    const snap = await k.call('POST', `/api/v1/sessions/${id}/snapshots`, { name: 'alpha-only' }, alpha);
    expect(snap.status, JSON.stringify(snap.body)).toBe(201);
    try {
      await withClient(BETA, async (c) => {
        for (const [name, args] of [
          ['sandbox_pause', { sandbox_id: id }],
          ['sandbox_resume', { sandbox_id: id }],
          ['snapshot_create', { sandbox_id: id }],
          ['sandbox_fork', { sandbox_id: id }],
        ] as Array<[string, Record<string, unknown>]>) {
          const r = await call(c, name, args);
          expect([name, r.isError, r.structuredContent?.error?.code]).toEqual([name, true, 'SessionNotFound']);
        }
        for (const [name, args] of [
          ['snapshot_delete', { snapshot_id: snap.body.id }],
          ['sandbox_create_from_snapshot', { snapshot_id: snap.body.id }],
        ] as Array<[string, Record<string, unknown>]>) {
          const r = await call(c, name, args);
          expect([name, r.isError, r.structuredContent?.error?.code]).toEqual([name, true, 'SnapshotNotFound']);
        }
        expect(JSON.stringify(await call(c, 'snapshot_list'))).not.toContain(snap.body.id);
      });
      expect(await state(id)).toBe('running');
      expect((await k.call('GET', `/api/v1/snapshots/${snap.body.id}`, undefined, alpha)).status).toBe(200);

      const admin = { authorization: `Bearer ${ADMIN}` };
      expect((await k.call('POST', '/api/v1/admin/tenants', { id: 'lifeview' }, admin)).status).toBe(201);
      const reader = (await k.call('POST', '/api/v1/admin/tenants/lifeview/keys', { scopes: ['read'] }, admin)).body.key as string;
      await withClient(reader, async (c) => {
        expect((await okCall(c, 'snapshot_list')).snapshots).toEqual([]);
        for (const [name, args] of [
          ['sandbox_pause', { sandbox_id: id }],
          ['sandbox_resume', { sandbox_id: id }],
          ['snapshot_create', { sandbox_id: id }],
          ['sandbox_fork', { sandbox_id: id }],
          ['snapshot_delete', { snapshot_id: snap.body.id }],
          ['sandbox_create_from_snapshot', { snapshot_id: snap.body.id }],
        ] as Array<[string, Record<string, unknown>]>) {
          const r = await call(c, name, args);
          expect([name, r.isError, r.structuredContent?.error?.code]).toEqual([name, true, 'Forbidden']);
        }
      });
    } finally {
      await k.call('DELETE', `/api/v1/snapshots/${snap.body.id}`, undefined, alpha);
      await k.call('DELETE', `/api/v1/sessions/${id}`, undefined, alpha);
    }
  });
});
