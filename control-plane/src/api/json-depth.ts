import type { Context, MiddlewareHandler } from 'hono';
import { errorBody } from './errors.js';

/**
 * Deepest nesting of arrays and objects a request body may have. V8 parses any depth, but
 * serialising a value ~4,500 levels deep overflows the stack (the queue stores every event as
 * JSON), so the limit is checked on the text, before anything parses it. Real payloads nest a
 * few dozen levels.
 */
export const MAX_JSON_DEPTH = 512;

/**
 * Whether JSON text nests deeper than `max`, by one pass over its characters (strings skipped).
 * It does not validate the JSON: the parser after it does that.
 */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c /* \ */) i++;
      else if (ch === 0x22 /* " */) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x5b /* [ */ || ch === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (ch === 0x5d /* ] */ || ch === 0x7d /* } */) depth--;
  }
  return false;
}

const TOO_DEEP = `JSON body is nested more than ${MAX_JSON_DEPTH} levels deep`;

/** The 400 for a body nested too deeply. */
export function tooDeep(c: Context): Response {
  return c.json(errorBody('InvalidRequest', TOO_DEEP, { maxDepth: MAX_JSON_DEPTH }), 400);
}

/**
 * Refuses bodies nested past MAX_JSON_DEPTH. Reads the body as text (Hono caches it, so the
 * route's own json()/text() reuses it); `skip` names requests whose bodies are streamed on
 * (uploads) or were checked already (the hot route, in text-body.ts).
 */
export function jsonDepthGuard(skip: (method: string, path: string) => boolean): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || c.req.method === 'DELETE' || skip(c.req.method, c.req.path)) return next();
    if (jsonTooDeep(await c.req.text())) return tooDeep(c);
    return next();
  };
}

/**
 * Whether a parsed value nests deeper than `max` (MCP arguments, bodies parsed elsewhere), by an
 * explicit stack rather than recursion, so a hostile value cannot overflow it either.
 */
export function valueTooDeep(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}
