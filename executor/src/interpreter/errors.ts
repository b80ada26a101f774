import { ErrorCode } from '@kiln/proto/executor/errors';
import { AgentError } from '../errors.js';

export class ContextNotFoundError extends AgentError {
  constructor(contextId: string) {
    super(ErrorCode.ERROR_CODE_CONTEXT_NOT_FOUND, `no code context "${contextId}" in this session; list them with GET /api/v1/sessions/{id}/contexts`, { contextId });
  }
}

export class ContextBusyError extends AgentError {
  constructor(contextId: string) {
    super(ErrorCode.ERROR_CODE_CONTEXT_BUSY, `code context "${contextId}" is running another execution; wait for it, interrupt it, or use another context`, { contextId });
  }
}

export class TooManyContextsError extends AgentError {
  constructor(maxContexts: number) {
    super(ErrorCode.ERROR_CODE_TOO_MANY_CONTEXTS, `this session already has ${maxContexts} code contexts; delete one first`, { maxContexts });
  }
}

export class KernelStartFailedError extends AgentError {
  constructor(language: string, detail: string) {
    super(ErrorCode.ERROR_CODE_KERNEL_START_FAILED, `the ${language} kernel did not start (use the code-interpreter template, or a template whose image has ${language === 'python' ? 'python3-ipykernel and python3-jupyter-client' : 'Node 20'}): ${detail}`, { language, detail });
  }
}
