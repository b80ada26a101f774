import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

let k: TestKiln;
const open: Array<{ client: Client; transport: StreamableHTTPClientTransport }> = [];

beforeAll(async () => {
  // shell is left out on purpose: code_run's shell scripts then run on the nodejs template.
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 2 } }, python: { pool: { minIdle: 1 } }, shell: null, provided: null } });
});
afterAll(async () => {
  for (const { client } of open) await client.close().catch(() => undefined); // already closed by its test
  await k?.stop();
});

async function connect(profile: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(`${k.url}/mcp/${profile}`));
  const client = new Client({ name: 'kiln-test', version: '1.0.0' });
  await client.connect(transport);
  open.push({ client, transport });
  return { client, transport };
}

type Result = { isError?: boolean; structuredContent?: any; content: Array<{ type: string; text?: string }> };
async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<Result> {
  return (await client.callTool({ name, arguments: args })) as Result;
}
const text = (r: Result) => r.content.map((c) => c.text ?? '').join('\n');

/** A raw JSON-RPC POST, as a stateless client sends it. */
async function rpc(profile: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${k.url}/mcp/${profile}`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers }, body: JSON.stringify(body) });
  const raw = await res.text();
  let json: any = raw;
  try {
    json = JSON.parse(raw);
  } catch {
    // not JSON; the test prints the raw text
  }
  return { status: res.status, json };
}

describe('MCP over streamable HTTP', () => {
  it('lists exactly the tools of each profile, each with a described JSON schema', async () => {
    const expected: Record<string, number> = { executor: 1, developer: 6, full: 14, functions: 3 };
    for (const [profile, count] of Object.entries(expected)) {
      const { client } = await connect(profile);
      const { tools } = await client.listTools();
      expect(tools.length, profile).toBe(count);
      for (const t of tools) {
        expect(t.description?.length, t.name).toBeGreaterThan(40);
        expect(t.inputSchema.type).toBe('object');
        for (const [prop, schema] of Object.entries(t.inputSchema.properties ?? {})) expect((schema as { description?: string }).description, `${t.name}.${prop}`).toBeTruthy();
      }
      await client.close();
    }
    const { client } = await connect('developer');
    expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(['file_list', 'file_mkdir', 'file_read', 'file_remove', 'file_write', 'process_run']);
  });

  it('full: creates a sandbox with the caller\'s metadata, works with files and processes, and deletes it', async () => {
    const { client } = await connect('full');
    const created = await call(client, 'sandbox_create', { metadata: { task: 'mcp-test' } });
    expect(created.isError, text(created)).toBeFalsy();
    const id = created.structuredContent.sandboxId as string;
    expect(created.structuredContent.metadata).toMatchObject({ task: 'mcp-test', 'kiln.source': 'mcp', 'mcp.profile': 'full', 'mcp.client': 'kiln-test/1.0.0' });
    const listed = await call(client, 'sandbox_list', { metadata: { task: 'mcp-test' } });
    expect(listed.structuredContent.sandboxes.map((s: { id: string }) => s.id)).toEqual([id]);
    // The REST API sees the same session.
    expect((await k.call('GET', `/api/v1/sessions/${id}`)).body.metadata['mcp.session']).toBeTruthy();

    expect((await call(client, 'file_mkdir', { sandbox_id: id, path: 'src/lib' })).isError).toBeFalsy();
    const written = await call(client, 'file_write', { sandbox_id: id, path: 'src/hello.py', content: 'print("hi from", 6 * 7)\n' });
    expect(written.structuredContent).toMatchObject({ sandboxId: id, path: '/workspace/src/hello.py', type: 'file', size: 24 });
    const read = await call(client, 'file_read', { sandboxId: id, path: 'src/hello.py' });
    expect(read.structuredContent).toMatchObject({ content: 'print("hi from", 6 * 7)\n', truncated: false });
    const ran = await call(client, 'process_run', { sandbox_id: id, command: 'cd src && python3 hello.py && echo oops >&2; exit 3' });
    expect(ran.structuredContent).toMatchObject({ sandboxId: id, exitCode: 3, stdout: 'hi from 42\n', stderr: 'oops\n', sandboxCreated: false });
    expect(text(ran)).toContain('exit code 3');
    const direct = await call(client, 'process_run', { sandbox_id: id, command: 'echo', args: ['a b', '$HOME'] });
    expect(direct.structuredContent.stdout).toBe('a b $HOME\n');

    await call(client, 'file_copy', { sandbox_id: id, source: 'src', destination: 'copy' });
    await call(client, 'file_move', { sandbox_id: id, source: 'copy/hello.py', destination: 'copy/moved.py' });
    const listing = await call(client, 'file_list', { sandbox_id: id, path: 'copy' });
    expect(listing.structuredContent.entries.map((e: { name: string }) => e.name).sort()).toEqual(['lib', 'moved.py']);
    const info = await call(client, 'file_info', { sandbox_id: id, path: 'copy/moved.py' });
    expect(info.structuredContent).toMatchObject({ type: 'file', size: 24 });
    expect((await call(client, 'file_remove', { sandbox_id: id, path: 'copy' })).isError).toBe(true); // a directory needs recursive
    expect((await call(client, 'file_remove', { sandbox_id: id, path: 'copy', recursive: true })).structuredContent.existed).toBe(true);

    const bg = await call(client, 'process_run', { sandbox_id: id, command: 'echo started; sleep 300', background: true });
    const killed = await call(client, 'process_kill', { sandbox_id: id, pid: bg.structuredContent.pid, signal: 'SIGKILL' });
    expect(killed.isError, text(killed)).toBeFalsy();

    expect((await call(client, 'sandbox_delete', { sandbox_id: id })).structuredContent).toEqual({ sandboxId: id, deleted: true });
    const gone = await call(client, 'sandbox_get', { sandbox_id: id });
    expect(gone.isError).toBe(true);
    expect(text(gone)).toMatch(/SessionNotFound: session "ses_.*" does not exist/);
    expect((await k.call('GET', `/api/v1/sessions/${id}`)).status).toBe(404);
  });

  it('developer: without sandbox_id the tools share one sandbox per MCP session, deleted when the session ends', async () => {
    const { client, transport } = await connect('developer');
    const first = await call(client, 'process_run', { command: 'echo 1 > n.txt && pwd' });
    expect(first.structuredContent).toMatchObject({ stdout: '/workspace\n', sandboxCreated: true });
    const id = first.structuredContent.sandboxId as string;
    const again = await call(client, 'file_read', { path: 'n.txt' });
    expect(again.structuredContent).toMatchObject({ sandboxId: id, content: '1\n' });
    const session = await k.call('GET', `/api/v1/sessions/${id}`);
    expect(session.body.metadata).toMatchObject({ 'kiln.source': 'mcp', 'mcp.profile': 'developer', 'mcp.sandbox': 'connection', 'mcp.session': transport.sessionId });
    await transport.terminateSession();
    expect((await k.call('GET', `/api/v1/sessions/${id}`)).status).toBe(404);
  });

  it('reports bad calls as tool errors that say what to change, and keeps serving', async () => {
    const { client } = await connect('full');
    const missing = await call(client, 'process_run', { sandbox_id: 'ses_doesnotexist', command: 'true' });
    expect(missing.isError).toBe(true);
    expect(text(missing)).toContain('SessionNotFound');
    expect(text(missing)).toContain('Omit sandbox_id');
    for (const path of ['../../etc/passwd', '/etc/passwd']) {
      const escape = await call(client, 'file_read', { path });
      expect(escape.isError, path).toBe(true);
      expect(text(escape)).toContain('PathOutsideWorkspace');
    }
    const escapeWrite = await call(client, 'file_write', { path: '../outside.txt', content: 'x' });
    expect(text(escapeWrite)).toContain('PathOutsideWorkspace');
    const unknown = await call(client, 'no_such_tool', {});
    expect(unknown.isError).toBe(true);
    expect(text(unknown)).toContain('no_such_tool');
    const badArgs = await call(client, 'process_run', { cmd: 'ls' });
    expect(badArgs.isError).toBe(true);
    expect(text(badArgs)).toMatch(/command/);
    const noId = await call(client, 'sandbox_delete', {});
    expect(text(noId)).toContain('sandbox_id is required');
    const dir = await call(client, 'file_read', { path: '.' });
    expect(text(dir)).toContain('use file_list');
    // Still serving after all of that.
    const fine = await call(client, 'process_run', { command: 'echo still here' });
    expect(fine.structuredContent.stdout).toBe('still here\n');
  });

  it('truncates long outputs with a note that says how to read the rest', async () => {
    const { client } = await connect('developer');
    const long = await call(client, 'process_run', { command: 'seq 1 50000' });
    expect(long.structuredContent.truncated).toBe(true);
    expect(long.structuredContent.stdout.length).toBe(20_000);
    expect(text(long)).toMatch(/truncated: showing 20000 of 288894 characters.*file_read/);
    await call(client, 'process_run', { command: 'seq 1 50000 > big.txt' });
    const part = await call(client, 'file_read', { path: 'big.txt', length: 100 });
    expect(part.structuredContent).toMatchObject({ truncated: true, bytesRead: 100, size: 288894 });
    expect(text(part)).toContain('offset: 100');
    const next = await call(client, 'file_read', { path: 'big.txt', offset: 288890 });
    expect(next.structuredContent).toMatchObject({ content: '000\n', truncated: false });
  });

  it('answers 404 to an unknown mcp-session-id and to an unknown profile', async () => {
    const res = await rpc('developer', { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': 'not-a-session' });
    expect(res.status).toBe(404);
    expect(res.json.error.message).toContain('does not exist');
    const profile = await rpc('nope', { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(profile.status).toBe(404);
    expect(profile.json.error.message).toContain('/mcp/developer');
    const garbage = await fetch(`${k.url}/mcp/developer`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{not json' });
    expect(garbage.status).toBe(400);
  });

  it('serves stateless requests without a session id', async () => {
    const list = await rpc('executor', { jsonrpc: '2.0', id: 1, method: 'tools/list' });
    expect(list.status, JSON.stringify(list.json)).toBe(200);
    expect(list.json.result.tools.map((t: { name: string }) => t.name)).toEqual(['process_run']);
    const first = await rpc('executor', { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'process_run', arguments: { command: 'echo kept > f.txt' } } });
    const id = first.json.result.structuredContent.sandboxId as string;
    expect(id).toMatch(/^ses_/);
    const second = await rpc('executor', { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'process_run', arguments: { sandboxId: id, command: 'cat f.txt' } } });
    expect(second.json.result.structuredContent.stdout).toBe('kept\n');
    const bad = await rpc('executor', { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'process_run', arguments: {} } });
    expect(bad.json.result.isError).toBe(true);
    await k.call('DELETE', `/api/v1/sessions/${id}`);
  });
});

describe('MCP functions profile', () => {
  it('code_run runs handlers and scripts in nodejs, python and shell', async () => {
    const { client } = await connect('functions');
    const cases: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ language: 'nodejs', code: 'exports.handler = async (e) => { console.log("adding"); return { sum: e.a + e.b }; }', event: { a: 2, b: 3 } }, { mode: 'handler', status: 'succeeded', result: { sum: 5 } }],
      [{ language: 'nodejs', code: 'console.log([1, 2, 3].map((x) => x * 2).join(","));\nconsole.error("warn");' }, { mode: 'script', status: 'succeeded', stdout: '2,4,6\n', stderr: 'warn\n', exitCode: 0 }],
      [{ language: 'python', code: 'def handler(event, context):\n    return {"upper": event["s"].upper()}\n', event: { s: 'kiln' } }, { mode: 'handler', status: 'succeeded', result: { upper: 'KILN' } }],
      [{ language: 'python', code: 'import sys\nprint(sum(range(10)))\nsys.exit(4)\n' }, { mode: 'script', status: 'failed', stdout: '45\n', exitCode: 4 }],
      [{ language: 'shell', code: 'echo "$((6 * 7))"; ls /workspace' }, { mode: 'script', status: 'succeeded', stdout: '42\nmain.sh\n' }],
    ];
    for (const [args, expected] of cases) {
      const r = await call(client, 'code_run', args);
      expect(r.isError, text(r)).toBeFalsy();
      expect(r.structuredContent, JSON.stringify(args)).toMatchObject(expected);
    }
    const thrown = await call(client, 'code_run', { language: 'nodejs', code: 'exports.handler = async () => { throw new TypeError("bad input"); }' });
    expect(thrown.structuredContent).toMatchObject({ status: 'failed', error: { errorType: 'TypeError', errorMessage: 'bad input' } });
    const badLanguage = await call(client, 'code_run', { language: 'ruby', code: 'puts 1' });
    expect(badLanguage.isError).toBe(true);
    // Scripts run in sandboxes of their own, deleted afterwards.
    expect((await k.call('GET', '/api/v1/sessions?metadata.mcp.tool=code_run')).body.sessions).toEqual([]);
  });

  it('function_list and function_invoke call deployed functions', async () => {
    const created = await k.call('POST', '/api/v1/functions', { name: 'mcp-greet', runtime: 'nodejs20.x', description: 'greets', code: { source: 'exports.handler = async (e) => ({ hi: e.name })' } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    try {
      const { client } = await connect('functions');
      const list = await call(client, 'function_list');
      expect(list.structuredContent.functions.map((f: { name: string }) => f.name)).toContain('mcp-greet');
      const out = await call(client, 'function_invoke', { name: 'mcp-greet', event: { name: 'agent' } });
      expect(out.structuredContent).toMatchObject({ status: 'succeeded', result: { hi: 'agent' }, version: '$LATEST' });
      const missing = await call(client, 'function_invoke', { name: 'no-such-fn' });
      expect(missing.isError).toBe(true);
      expect(text(missing)).toContain('function_list');
    } finally {
      await k.call('DELETE', '/api/v1/functions/mcp-greet');
    }
  });
});
