import type { Principal, Scope } from '../tenancy/principal.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { ExecutionService } from '../executions/service.js';
import type { FunctionInvoker } from '../functions/invoker.js';
import type { FunctionService } from '../functions/service.js';
import { log } from '../log.js';
import type { SessionLifecycle } from '../sessions/lifecycle.js';
import type { SessionService } from '../sessions/service.js';
import type { SnapshotService } from '../sessions/snapshots.js';
import type { TemplateRegistry } from '../templates/registry.js';
import type { ProfileName } from './profiles.js';

/** The services MCP tools call: the same ones the REST routes call. */
export interface McpServices {
  sessions: SessionService;
  executions: ExecutionService;
  templates: TemplateRegistry;
  functions?: { service: FunctionService; invoker: FunctionInvoker };
  /** Pause/resume, snapshots and forks (the `lifecycle` profile's tools). */
  lifecycle: { sessions: SessionLifecycle; snapshots: SnapshotService };
}

/** Everything a tool handler may use for one MCP connection (or one stateless request). */
export interface ToolContext {
  services: McpServices;
  profile: ProfileName;
  /** Who the connection acts as (its key's tenant and scopes): every tool call is checked against it. */
  principal: Principal;
  /** Labels put on every session this connection creates, so operators can find and filter them. */
  callerMetadata(): Record<string, string>;
  /** The sandbox a session tool acts on: the one named, else this connection's own. */
  sandbox(named: string | undefined): Promise<{ id: string; created: boolean }>;
}

/** One tool: a schema the SDK validates and turns into JSON schema, and a thin handler. */
export interface ToolDef<S extends z.ZodRawShape = z.ZodRawShape> {
  name: string;
  /**
   * The scope a key needs to call it (tenancy/principal.ts), checked before `run`: tools that
   * act in a sandbox need `sessions` (even reads: without a sandbox id they make the connection's
   * own), running code needs `invoke`, listings need `read`.
   */
  scope: Scope;
  title: string;
  description: string;
  inputSchema: S;
  annotations?: { readOnlyHint?: boolean; destructiveHint?: boolean; idempotentHint?: boolean; openWorldHint?: boolean };
  run(args: z.objectOutputType<S, z.ZodTypeAny>, ctx: ToolContext): Promise<CallToolResult>;
}

/** Keeps each tool's argument type tied to its schema while the list of tools stays uniform. */
export function defineTool<S extends z.ZodRawShape>(def: ToolDef<S>): ToolDef {
  return def;
}

/**
 * The sandbox that session tools use when no sandbox_id is given. A session-based MCP
 * connection gets one sandbox, created on first use and deleted when the connection closes
 * (or ended earlier by the normal idle and lifetime rules, after which the next call makes a
 * new one). A stateless request has a context of its own, so it gets a new sandbox each time;
 * its id is in the result for the agent to pass back as sandbox_id.
 */
export class ConnectionSandbox {
  private id: string | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly sessions: SessionService,
    private readonly metadata: () => Record<string, string>,
    private readonly principal: Principal,
    /** Template of the sandbox it creates (default: the deployment's default). */
    private readonly template?: string,
  ) {}

  async get(named: string | undefined): Promise<{ id: string; created: boolean }> {
    if (named) return { id: named, created: false };
    if (this.id && (await this.alive(this.id))) return { id: this.id, created: false };
    // Concurrent first calls share one creation instead of leasing two sandboxes.
    this.pending ??= this.sessions.create({ ...(this.template ? { template: this.template } : {}), metadata: { ...this.metadata(), 'mcp.sandbox': 'connection' } }, this.principal).then(
      (s) => {
        this.id = s.id;
        this.pending = undefined;
        return s.id;
      },
      (err: unknown) => {
        this.pending = undefined;
        throw err;
      },
    );
    return { id: await this.pending, created: true };
  }

  /** Ends the connection's sandbox, if it made one. Failures are logged: the idle rules end it anyway. */
  async dispose(): Promise<void> {
    const id = this.id;
    this.id = undefined;
    if (!id) return;
    await this.sessions.delete(id, this.principal, 'mcp connection closed').catch((err: unknown) => log('debug', 'could not delete the mcp connection sandbox; the idle rules will end it', { sessionId: id, error: String(err) }));
  }

  private async alive(id: string): Promise<boolean> {
    return this.sessions.store.get(id).then((r) => r !== undefined);
  }
}

/** The sandbox argument of every session tool, under both spellings agents send. */
export const sandboxArgs = {
  sandbox_id: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .describe('Id of the sandbox (a Kiln session, "ses_...") to act on. Omit it to use this connection\'s own sandbox, which is created on first use and kept for the whole MCP session; a stateless request gets a new one each time, so pass back the sandboxId from the result to keep working in it.'),
  sandboxId: z.string().min(1).max(100).optional().describe('Same as sandbox_id (either spelling is accepted).'),
};

/** Reads the sandbox id under either spelling agents use. */
export function sandboxIdOf(args: { sandbox_id?: string | undefined; sandboxId?: string | undefined }): string | undefined {
  return args.sandbox_id ?? args.sandboxId;
}
