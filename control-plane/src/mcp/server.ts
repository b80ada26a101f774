import { requireScope, type Principal } from '../tenancy/principal.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { ConnectionSandbox, type McpServices, type ToolContext, type ToolDef } from './context.js';
import { PROFILES, type ProfileName } from './profiles.js';
import { toolError } from './results.js';
import { codeTools } from './tools/code.js';
import { fileTools } from './tools/files.js';
import { functionTools } from './tools/functions.js';
import { lifecycleTools } from './tools/lifecycle.js';
import { processTools } from './tools/process.js';
import { sandboxTools } from './tools/sandboxes.js';

const ALL_TOOLS = new Map<string, ToolDef>([...sandboxTools, ...processTools, ...fileTools, ...functionTools, ...codeTools, ...lifecycleTools].map((t) => [t.name, t]));

const INSTRUCTIONS: Record<ProfileName, string> = {
  executor: 'Run shell commands in an isolated Linux sandbox with process_run. The sandbox and its /workspace persist for this MCP session.',
  developer: 'Run commands and edit files in an isolated Linux sandbox. Every path is inside /workspace, which persists for this MCP session.',
  full: 'Create isolated Linux sandboxes (sandbox_create), run processes and manage files in them, and delete them when done. Without sandbox_id the tools use this MCP session\'s own sandbox.',
  functions: 'Invoke Lambda-style functions deployed on Kiln, or run a nodejs, python or shell snippet in a fresh sandbox with code_run.',
  lifecycle:
    'Create isolated Linux sandboxes and work in them, pause them (sandbox_pause freezes every process; any later call resumes it), save their /workspace as snapshots (snapshot_create) to start new sandboxes from, and fork a sandbox into several copies to try approaches side by side (sandbox_fork). Without sandbox_id the tools use this MCP session\'s own sandbox.',
  interpreter: 'Run Python or JavaScript cell by cell with run_code, as in a notebook: state persists, charts come back as images. Files in /workspace (file_write, file_read, file_list) are visible to the code. The sandbox persists for this MCP session.',
};

/** One MCP server instance: a connection's (or a stateless request's) tools and its sandbox. */
export interface KilnMcpServer {
  server: McpServer;
  /** Ends the sandbox this connection created implicitly. */
  dispose(): Promise<void>;
}

/**
 * Builds the MCP server of a profile over Kiln's services. Tool handlers never throw to the
 * SDK: every failure becomes an `isError` result (see results.ts), so a bad call never ends
 * the connection. Argument validation and unknown tools are turned into tool errors by the
 * SDK itself.
 */
export function buildMcpServer(profile: ProfileName, services: McpServices, principal: Principal, opts: { mcpSessionId?: string } = {}): KilnMcpServer {
  const server = new McpServer({ name: `kiln-${profile}`, version: '0.1.0' }, { instructions: INSTRUCTIONS[profile] });
  const callerMetadata = (): Record<string, string> => {
    const client = server.server.getClientVersion();
    return {
      'kiln.source': 'mcp',
      'mcp.profile': profile,
      ...(client ? { 'mcp.client': `${client.name}/${client.version}` } : {}),
      ...(opts.mcpSessionId ? { 'mcp.session': opts.mcpSessionId } : {}),
    };
  };
  // The interpreter profile's own sandbox needs the kernels of the code-interpreter template, when the deployment has it.
  const template = profile === 'interpreter' && services.templates.has('code-interpreter') ? 'code-interpreter' : undefined;
  const sandbox = new ConnectionSandbox(services.sessions, callerMetadata, principal, template);
  const ctx: ToolContext = { services, profile, principal, callerMetadata, sandbox: (named) => sandbox.get(named) };
  for (const name of PROFILES[profile]) {
    const tool = ALL_TOOLS.get(name);
    if (!tool) throw new Error(`profile ${profile} lists tool ${name}, which no tools module defines`);
    server.registerTool(tool.name, { title: tool.title, description: tool.description, inputSchema: tool.inputSchema, ...(tool.annotations ? { annotations: tool.annotations } : {}) }, async (args: Record<string, unknown>) => {
      try {
        requireScope(principal, tool.scope);
        return await tool.run(args, ctx);
      } catch (err) {
        return toolError(err, tool.name);
      }
    });
  }
  return { server, dispose: () => sandbox.dispose() };
}
