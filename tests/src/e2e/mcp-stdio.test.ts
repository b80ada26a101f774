import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestKiln, type TestKiln } from '../support/kiln.js';

const CLI = fileURLToPath(new URL('../../../control-plane/dist/cli.js', import.meta.url));
const KEY = 'stdio-test-key-0123456789';

let k: TestKiln;
beforeAll(async () => {
  k = await startTestKiln({ templates: { nodejs: { pool: { minIdle: 1 } }, python: null, shell: null, provided: null }, env: { KILN_API_KEYS: KEY } });
});
afterAll(async () => {
  await k?.stop();
});

const env = (extra: Record<string, string>) => ({ PATH: process.env.PATH ?? '/usr/bin:/bin', ...extra });

/** Runs the CLI to completion without blocking this process, which is also serving the Kiln. */
function cli(args: string[], extra: Record<string, string> = {}, input = ''): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: env(extra) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

describe('kiln mcp (stdio)', () => {
  it('bridges an MCP client on stdio to a running Kiln and runs a process', async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'mcp', '--profile', 'developer'], env: env({ KILN_URL: k.url, KILN_API_KEY: KEY }), stderr: 'pipe' });
    let stderr = '';
    transport.stderr?.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const client = new Client({ name: 'stdio-test', version: '1.0.0' });
    await client.connect(transport);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort(), stderr).toEqual(['file_list', 'file_mkdir', 'file_read', 'file_remove', 'file_write', 'process_run']);
      const r = (await client.callTool({ name: 'process_run', arguments: { command: 'echo "via stdio" && id -u' } })) as unknown as { structuredContent: { stdout: string; sandboxId: string } };
      expect(r.structuredContent.stdout, stderr).toBe('via stdio\n1000\n');
      const sandboxId = r.structuredContent.sandboxId;
      const bad = (await client.callTool({ name: 'file_read', arguments: { path: '../../etc/shadow' } })) as { isError?: boolean };
      expect(bad.isError).toBe(true);
      await client.close();
      // Closing stdin ends the MCP session, which deletes its sandbox.
      await expect.poll(async () => (await k.call('GET', `/api/v1/sessions/${sandboxId}`, undefined, { authorization: `Bearer ${KEY}` })).status, { timeout: 10_000 }).toBe(404);
    } finally {
      await client.close();
    }
  });

  it('fails clearly on an unknown profile, an unreachable KILN_URL and a missing key', async () => {
    const profile = await cli(['mcp', '--profile', 'admin'], { KILN_URL: k.url });
    expect(profile.status).toBe(2);
    expect(profile.stderr).toContain('unknown profile "admin"; use one of executor, developer, full, functions');
    const down = await cli(['mcp', '--profile', 'developer'], { KILN_URL: 'http://127.0.0.1:1' });
    expect(down.status).toBe(2);
    expect(down.stderr).toMatch(/cannot reach Kiln at http:\/\/127\.0\.0\.1:1 .*set KILN_URL/);
    const help = await cli(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('mcp --profile <name>');
    expect(help.stdout).toContain('KILN_API_KEY');
    // Without the key the server refuses; the bridge answers the request with that error.
    const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
    const nokey = await cli(['mcp', '--profile', 'developer'], { KILN_URL: k.url }, `${init}\n`);
    const answer = JSON.parse(nokey.stdout.split('\n')[0] || '{}') as { id: number; error?: { message: string } };
    expect(answer.id).toBe(1);
    expect(answer.error?.message).toMatch(/Unauthorized.*Set KILN_API_KEY/);
  });
});
