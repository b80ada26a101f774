import { domainMatches } from './policy.js';

/** A secret bound to a sandbox: its placeholder, its value and where the value may go. */
export interface BoundSecret {
  placeholder: string;
  value: string;
  hosts: string[];
  header: string;
  format: string;
  /** Also into HTTPS requests to `hosts`, which the proxy then intercepts (intercept.ts). */
  https?: boolean;
}

const PRINTABLE = /^[\x20-\x7e]*$/;
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
const PLACEHOLDER = /^kiln-secret-[A-Za-z0-9_-]{8,128}$/;

/** Why a secret cannot be bound as sent (the executor's own guard), or undefined. */
export function secretProblem(s: BoundSecret): string | undefined {
  if (!PLACEHOLDER.test(s.placeholder)) return 'placeholder must look like kiln-secret-<name>-<random>';
  if (!s.value || !PRINTABLE.test(s.value) || s.value.length > 8192) return 'value must be 1-8192 printable ASCII characters';
  if (!TOKEN.test(s.header)) return 'header must be an HTTP header name';
  if (!PRINTABLE.test(s.format) || !s.format.includes('{value}') || s.format.length > 1024) return 'format must be printable ASCII containing {value}';
  if (s.hosts.length === 0 || s.hosts.length > 64) return 'hosts must list 1-64 domains';
  return undefined;
}

/**
 * The header block of a plain-HTTP request to `host`, with the secrets bound to that host put
 * in: each one's placeholder replaced by its value anywhere in the header lines, and its header
 * set to its format. `Connection: close` makes this the connection's only request (the proxy
 * reads no later request's headers). Undefined when no secret is bound to the host: the request
 * goes as it came, placeholders and all. `head` ends with the blank line.
 */
export function injectSecrets(head: string, host: string, secrets: readonly BoundSecret[]): string | undefined {
  const bound = secrets.filter((s) => s.hosts.some((p) => domainMatches(p, host)));
  if (bound.length === 0) return undefined;
  const drop = new Set(['connection', 'proxy-connection', 'keep-alive', ...bound.map((s) => s.header.toLowerCase())]);
  const [requestLine = '', ...lines] = head.slice(0, -4).split('\r\n');
  const kept = lines.filter((l) => !drop.has(l.slice(0, l.indexOf(':')).trim().toLowerCase()));
  const replaced = kept.map((l) => bound.reduce((line, s) => line.split(s.placeholder).join(s.value), l));
  const added = bound.map((s) => `${s.header}: ${s.format.split('{value}').join(s.value)}`);
  return [requestLine, ...replaced, ...added, 'Connection: close', '', ''].join('\r\n');
}
