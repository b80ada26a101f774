import { InterpreterAgent } from '../agent/interpreter-client.js';
import { KilnError, ValidationError } from '../errors.js';
import type { SessionService } from '../sessions/service.js';
import type { Principal } from '../tenancy/principal.js';
import { codeRunEvent, contextView, type CodeRunEvent, type ContextView } from './events.js';

export const CODE_LANGUAGES = ['python', 'javascript'] as const;
export type CodeLanguage = (typeof CODE_LANGUAGES)[number];

/** Accepted spellings of a language, as E2B and Jupyter clients send them. */
const ALIASES: Record<string, CodeLanguage> = { python: 'python', python3: 'python', py: 'python', javascript: 'javascript', js: 'javascript', nodejs: 'javascript', node: 'javascript' };

export function codeLanguage(name: string): CodeLanguage {
  const lang = ALIASES[name.toLowerCase()];
  if (!lang) throw new ValidationError(`language must be one of ${CODE_LANGUAGES.join(', ')}; got "${name.slice(0, 40)}"`);
  return lang;
}

export interface CreateContextInput {
  language?: string;
  /** Working directory inside the sandbox (default /workspace). */
  cwd?: string;
}

export interface RunCodeInput {
  code: string;
  /** Runs in this context; else in the session's default context of `language` (made on first use). */
  contextId?: string;
  language?: string;
  timeoutMs?: number;
  /**
   * Aborting it stops the execution, as `CodeRun.cancel` does, also while `run` still waits for
   * the executor's first event (a silent cell): for a caller that went away before that.
   */
  signal?: AbortSignal;
}

/** The execution a caller holds: its context (known before any output) and its events. */
export interface CodeRun {
  contextId: string;
  language: string;
  events: AsyncGenerator<CodeRunEvent>;
  /** Stops the execution (interrupting the code) and ends `events`: for a caller that went away. */
  cancel(): void;
}

/**
 * Code contexts of a session: stateful Python (Jupyter) and JavaScript kernels in the session's
 * sandbox, kept by its executor (the control plane keeps no state of them, so any replica
 * serves any call). Every call goes through SessionService.open: the session's tenant only,
 * as for processes and files.
 *
 * This is what other surfaces call: the REST routes (api/routes/sessions-code.ts), the MCP
 * `code_run` tool, and an E2B `/execute` adapter (it maps CodeRunEvent to E2B's NDJSON).
 */
export class CodeInterpreterService {
  constructor(private readonly sessions: Pick<SessionService, 'open'>) {}

  private async agent(sessionId: string, who: Principal): Promise<{ agent: InterpreterAgent; env: Record<string, string> }> {
    const { record, agent } = await this.sessions.open(sessionId, who);
    return { agent: new InterpreterAgent(agent.agent, record.sandboxId), env: record.env };
  }

  async createContext(sessionId: string, input: CreateContextInput, who: Principal): Promise<ContextView> {
    const language = codeLanguage(input.language ?? 'python');
    const { agent, env } = await this.agent(sessionId, who);
    return contextView(await agent.createContext(language, input.cwd ?? '', env));
  }

  async listContexts(sessionId: string, who: Principal): Promise<ContextView[]> {
    const { agent } = await this.agent(sessionId, who);
    return (await agent.listContexts()).map(contextView);
  }

  async getContext(sessionId: string, contextId: string, who: Principal): Promise<ContextView> {
    const found = (await this.listContexts(sessionId, who)).find((c) => c.id === contextId);
    if (!found) throw new ContextNotFoundError(contextId);
    return found;
  }

  async deleteContext(sessionId: string, contextId: string, who: Principal): Promise<void> {
    const { agent } = await this.agent(sessionId, who);
    if (!(await agent.deleteContext(contextId))) throw new ContextNotFoundError(contextId);
  }

  async restartContext(sessionId: string, contextId: string, who: Principal): Promise<ContextView> {
    const { agent } = await this.agent(sessionId, who);
    return contextView(await agent.restartContext(contextId));
  }

  async interrupt(sessionId: string, contextId: string, who: Principal): Promise<ContextView> {
    const { agent } = await this.agent(sessionId, who);
    return contextView(await agent.interrupt(contextId));
  }

  /**
   * Starts an execution. Errors of the request itself (unknown session or context, a kernel
   * that will not start, a busy context) are thrown before the first event, so an HTTP edge can
   * answer them with a status; what happens in the code is events.
   */
  async run(sessionId: string, input: RunCodeInput, who: Principal): Promise<CodeRun> {
    if (input.contextId !== undefined && input.language !== undefined) throw new ValidationError('give either contextId or language, not both: a context has its language');
    const { agent, env } = await this.agent(sessionId, who);
    let context: { id: string; language: string };
    if (input.contextId !== undefined) {
      const found = (await agent.listContexts()).find((c) => c.id === input.contextId);
      if (!found) throw new ContextNotFoundError(input.contextId);
      context = found;
    } else {
      // The default context of a language is its oldest one; the first run makes it (the
      // executor decides, so concurrent first runs share one).
      context = await agent.createContext(codeLanguage(input.language ?? 'python'), '', env, true);
    }
    const hangup = new AbortController();
    if (input.signal?.aborted) hangup.abort();
    input.signal?.addEventListener('abort', () => hangup.abort(), { once: true });
    const events = agent.execute(context.id, input.code, input.timeoutMs ?? 0, hangup.signal);
    // The first event comes once the executor took the execution (or refused it: busy, gone).
    const first = await events.next();
    const mapped = (async function* (): AsyncGenerator<CodeRunEvent> {
      try {
        yield { type: 'start', contextId: context.id, language: context.language };
        for (let next = first; !next.done; next = await events.next()) {
          const e = codeRunEvent(next.value);
          if (e) yield e;
        }
      } catch (err) {
        if (!hangup.signal.aborted) throw err;
      } finally {
        await events.return(undefined);
      }
    })();
    return { contextId: context.id, language: context.language, events: mapped, cancel: () => hangup.abort() };
  }
}

/** No context of that id in the session (the executor's own 404 says the same for other calls). */
export class ContextNotFoundError extends KilnError {
  constructor(contextId: string) {
    super('ContextNotFound', 404, `no code context "${contextId.slice(0, 100)}" in this session; list them with GET /api/v1/sessions/{id}/contexts`, { contextId: contextId.slice(0, 100) });
  }
}
