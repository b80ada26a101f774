/**
 * The console's one way to the API: the key from sessionStorage (gone when the tab closes) as
 * `Authorization: Bearer`, JSON in and out, errors as ApiError with the API's code. A 401 logs
 * out. Nothing here turns a response into HTML: pages render text only (see README, security).
 */
const KEY = 'kiln.apiKey';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let onLogout: () => void = () => undefined;
export function setLogoutHandler(fn: () => void): void {
  onLogout = fn;
}

export function apiKey(): string | null {
  return sessionStorage.getItem(KEY);
}
export function setApiKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, key);
}

async function raw(method: string, path: string, body?: BodyInit, type?: string): Promise<Response> {
  const headers: Record<string, string> = {};
  const key = apiKey();
  if (key) headers.authorization = `Bearer ${key}`;
  if (type) headers['content-type'] = type;
  const res = await fetch(path, { method, headers, ...(body !== undefined ? { body } : {}) });
  if (res.ok) return res;
  let code = 'HttpError';
  let message = `${res.status} ${res.statusText}`;
  try {
    const j = (await res.json()) as { error?: { code?: string; message?: string } };
    code = j.error?.code ?? code;
    message = j.error?.message ?? message;
  } catch {
    // not JSON: the status line says enough
  }
  if (res.status === 401) {
    setApiKey(null);
    onLogout();
  }
  throw new ApiError(res.status, code, message);
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await raw(method, path, body === undefined ? undefined : JSON.stringify(body), body === undefined ? undefined : 'application/json');
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/** The response itself (file downloads); errors as `api`. */
export function apiRaw(method: string, path: string, body?: BodyInit, type?: string): Promise<Response> {
  return raw(method, path, body, type);
}

export const enc = encodeURIComponent;

/** Human sizes: 1.5 MiB. */
export function bytes(n: number | undefined): string {
  if (n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

export function ms(n: number | undefined): string {
  if (n === undefined) return '–';
  return n < 1000 ? `${Math.round(n * 10) / 10} ms` : `${(n / 1000).toFixed(2)} s`;
}

export function errorText(err: unknown): string {
  return err instanceof ApiError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
}
