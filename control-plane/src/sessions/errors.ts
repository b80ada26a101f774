import { KilnError } from '../errors.js';

export class SessionNotFoundError extends KilnError {
  constructor(sessionId: string) {
    super('SessionNotFound', 404, `session "${sessionId}" does not exist (it may have expired or been deleted)`, { sessionId });
  }
}

/**
 * The session's sandbox is gone without anyone ending it (its executor died): its processes and
 * files are gone too. 410, not 404: the session existed, and the client must create a new one.
 */
export class SessionLostError extends KilnError {
  constructor(sessionId: string, reason: string) {
    super('SessionLost', 410, `session "${sessionId}" was lost (${reason}); its processes and files are gone. Create a new session`, { sessionId, reason });
  }
}

/** The session's runner already holds other handler code; module state is per code. */
export class SessionCodeConflictError extends KilnError {
  constructor(sessionId: string) {
    super('SessionCodeConflict', 409, `session "${sessionId}" already runs other handler code; a session keeps one handler module loaded, so create a new session for different code`, { sessionId });
  }
}

export class SessionBusyError extends KilnError {
  constructor(sessionId: string) {
    super('SessionBusy', 409, `session "${sessionId}" is running another execute call; wait for it to finish`, { sessionId });
  }
}

export class UnsupportedResourcesError extends KilnError {
  constructor(field: string, wanted: number, offered: number) {
    super('UnsupportedResources', 400, `resources.${field} must be at most the template's ${offered} (sessions run in the template's pre-booted sandboxes); got ${wanted}`, { field, wanted, offered });
  }
}

/** The session is paused and was created with `autoResume: false`: resume it first. */
export class SessionPausedError extends KilnError {
  constructor(sessionId: string) {
    super('SessionPaused', 409, `session "${sessionId}" is paused and was created with autoResume: false; POST /api/v1/sessions/${sessionId}/resume first`, { sessionId });
  }
}

/** Another pause, resume, hibernate or snapshot of the session is still under way. */
export class SessionTransitionBusyError extends KilnError {
  constructor(sessionId: string) {
    super('SessionTransitionBusy', 409, `session "${sessionId}" is being paused, resumed or archived by another call; retry in a moment`, { sessionId });
  }
}
