#!/usr/bin/env node
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { isJSONRPCRequest, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { parseArgs } from 'node:util';
import { isProfile, PROFILE_NAMES, PROFILES } from './mcp/profiles.js';
import { ADMIN_HELP, adminRequest, sendAdmin } from './cli-admin.js';
import { describeError, doctor, fn, login, logs, sessions, templates, UsageError, type Flags } from './cli/commands.js';
import { resolveConfig } from './cli/config.js';

const HELP = `Usage: kiln <command>

Commands:
  login [--url URL] [--key KEY]      Check and save the server and key (~/.config/kiln/config.json;
                                     KILN_URL and KILN_API_KEY win over it)
  sessions ls|create|rm|exec|shell|cp
                                     ls [--template T]; create [--template T]; rm <id>...;
                                     exec <id> -- <command...> (exits with its code);
                                     shell <id> (the session's terminal; exits with the
                                     shell's code; Ctrl-D or exit ends it);
                                     cp <local> <id>:<path> | <id>:<path> <local> (a progress
                                     bar on stderr for files over 1 MB when it is a terminal)
  fn deploy <dir> [--name N] [--runtime R] [--handler H]   zip a folder, create or update
  fn invoke <name> [--event file.json|-]                   print the result (exit 1 if it failed)
  fn ls
  logs [-f] [--function NAME]        recent executions; -f follows new ones
  templates ls
  doctor                             what this host has of what sandboxes need
  (--json on every listing)
  mcp --profile <name>   Serve Kiln's MCP tools over stdio, for MCP clients that start a command
                         (Claude Desktop, IDE agents). It forwards every message to a running
                         Kiln at $KILN_URL/mcp/<name>.
${ADMIN_HELP}

Profiles:
${PROFILE_NAMES.map((p) => `  ${p.padEnd(10)} ${PROFILES[p].join(', ')}`).join('\n')}

Environment:
  KILN_URL       the running Kiln (default http://127.0.0.1:8080)
  KILN_API_KEY   the key to use (tenants and keys commands: an administrator key)
`;

function fail(message: string): never {
  process.stderr.write(`kiln: ${message}\n`);
  process.exit(2);
}

/**
 * `kiln mcp`: a stdio MCP server that is only a pipe. Each JSON-RPC message from stdin goes to
 * the Kiln's streamable HTTP endpoint and each message back goes to stdout, so the tools,
 * their schemas and their errors are exactly those of the HTTP endpoint.
 */
async function mcp(profile: string): Promise<void> {
  if (!isProfile(profile)) fail(`unknown profile "${profile}"; use one of ${PROFILE_NAMES.join(', ')}`);
  const base = (process.env.KILN_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
  let endpoint: URL;
  try {
    endpoint = new URL(`${base}/mcp/${profile}`);
  } catch {
    fail(`KILN_URL "${base}" is not a URL; set it to the running Kiln, e.g. http://127.0.0.1:8080`);
  }
  // Checked up front, so a wrong KILN_URL is one clear line instead of a client that hangs.
  await fetch(`${base}/api/v1/health`, { signal: AbortSignal.timeout(5000) }).catch((err: unknown) => {
    fail(`cannot reach Kiln at ${base} (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}); start it or set KILN_URL`);
  });
  const key = process.env.KILN_API_KEY;
  const upstream = new StreamableHTTPClientTransport(endpoint, key ? { requestInit: { headers: { authorization: `Bearer ${key}` } } } : {});
  const local = new StdioServerTransport();
  // Requests still waiting for Kiln's answer: when stdin ends (a piped client), they get it first.
  const pending = new Set<string | number>();
  let ending = false;
  const shutdown = (code: number): void => {
    // Ending the MCP session deletes its sandbox now instead of after the idle timeout.
    upstream
      .terminateSession()
      .catch(() => undefined) // already gone or unreachable: the server's idle rules end it
      .finally(() => process.exit(code));
  };
  const settle = (id: string | number): void => {
    pending.delete(id);
    if (ending && pending.size === 0) shutdown(0);
  };
  const reply = (msg: JSONRPCMessage): void => {
    local.send(msg).catch(() => shutdown(1)); // stdout is gone: nobody is listening any more
    if ('id' in msg && msg.id !== undefined && !('method' in msg)) settle(msg.id);
  };

  local.onmessage = (msg: JSONRPCMessage) => {
    if (isJSONRPCRequest(msg)) pending.add(msg.id);
    upstream.send(msg).catch((err: unknown) => {
      const detail = (err as Error).message;
      const hint = /Unauthorized/.test(detail) ? ' Set KILN_API_KEY to one of the server\'s KILN_API_KEYS.' : '';
      const message = `Kiln at ${base} refused the message: ${detail}${hint}`;
      process.stderr.write(`kiln: ${message}\n`);
      // A request must get an answer, or the client waits for ever.
      if (isJSONRPCRequest(msg)) reply({ jsonrpc: '2.0', id: msg.id, error: { code: -32603, message } });
    });
  };
  upstream.onmessage = reply;
  upstream.onerror = (err: Error) => process.stderr.write(`kiln: ${err.message}\n`);
  const end = (): void => {
    ending = true;
    if (pending.size === 0) shutdown(0);
  };
  local.onclose = end;
  process.stdin.on('end', end);
  await upstream.start();
  await local.start();
}

/** The commands built on the TypeScript SDK (cli/commands.ts): (arguments, flags, after `--`) → exit code. */
const SDK_COMMANDS: Record<string, (args: string[], flags: Flags, rest: string[]) => Promise<number> | number> = {
  login: (_a, f) => login(f),
  sessions,
  fn,
  templates,
  logs: (_a, f) => logs(f),
  doctor: (_a, f) => doctor(f),
};

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      profile: { type: 'string', short: 'p' },
      help: { type: 'boolean', short: 'h' },
      description: { type: 'string' },
      scopes: { type: 'string' },
      json: { type: 'boolean' },
      template: { type: 'string' },
      name: { type: 'string' },
      runtime: { type: 'string' },
      handler: { type: 'string' },
      event: { type: 'string' },
      function: { type: 'string' },
      follow: { type: 'boolean', short: 'f' },
      url: { type: 'string' },
      key: { type: 'string' },
      interval: { type: 'string' },
    },
    allowPositionals: true,
    strict: false,
  });
  const [command] = positionals;
  if (values.help || command === undefined || command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (command === 'tenants' || command === 'keys') {
    const req = adminRequest(positionals, { description: typeof values.description === 'string' ? values.description : undefined, scopes: typeof values.scopes === 'string' ? values.scopes : undefined });
    if (typeof req === 'string') fail(req);
    const base = (process.env.KILN_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
    const [status, text] = await sendAdmin(base, process.env.KILN_API_KEY, req).catch((err: unknown) => fail(`cannot reach Kiln at ${base}: ${(err as Error).message}; start it or set KILN_URL`));
    (status === 0 ? process.stdout : process.stderr).write(text + '\n');
    process.exitCode = status;
    return;
  }
  if (command in SDK_COMMANDS) {
    // Everything after `--` is the command of `sessions exec`, untouched by option parsing.
    const dash = process.argv.indexOf('--');
    const rest = dash >= 0 ? process.argv.slice(dash + 1) : [];
    const args = positionals.slice(1, dash >= 0 ? positionals.length - rest.length : undefined);
    const flags = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Flags;
    try {
      process.exitCode = await (SDK_COMMANDS[command] as (a: string[], f: Flags, r: string[]) => Promise<number> | number)(args, flags, rest);
    } catch (err) {
      process.stderr.write(`kiln: ${describeError(err, resolveConfig().url)}\n`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    }
    return;
  }
  if (command !== 'mcp') fail(`unknown command "${command}"; run kiln --help`);
  if (typeof values.profile !== 'string') fail(`mcp needs --profile <name>, one of ${PROFILE_NAMES.join(', ')}`);
  await mcp(values.profile);
}

main().catch((err: unknown) => fail((err as Error).stack ?? String(err)));
