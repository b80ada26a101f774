import { createHash, randomBytes } from 'node:crypto';
import { z } from '@hono/zod-openapi';
import { domainSchema } from '@kiln/executor/egress-policy';
import type { Redis } from 'ioredis';
import { KilnError } from '../errors.js';
import type { Keys } from '../store/keys.js';
import type { Sealer } from '../tenancy/sealer.js';

const PRINTABLE = /^[\x20-\x7e]+$/;

export const SecretNameParam = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'a secret name is 1-64 lower-case letters, digits and underscores, starting with a letter');

/** What a client stores: the value and where it may go (never readable back). */
export const SecretInputSchema = z
  .object({
    value: z.string().min(1).max(8192).regex(PRINTABLE, 'value must be printable ASCII (it goes into an HTTP header line)'),
    hosts: z.array(domainSchema).min(1).max(64).openapi({ description: 'Domains (exact or `*.`) whose plain-HTTP requests get the value', example: ['api.example.com'] }),
    header: z
      .string()
      .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$/, 'header must be an HTTP header name such as Authorization')
      .default('Authorization'),
    format: z
      .string()
      .max(1024)
      .regex(PRINTABLE, 'format must be printable ASCII')
      .refine((f) => f.includes('{value}'), 'format must contain {value}')
      .default('Bearer {value}'),
    https: z
      .boolean()
      .default(false)
      .openapi({ description: "Opt-in: also put the value into HTTPS requests to `hosts`. Kiln's proxy then terminates TLS for those hosts with the deployment's egress CA (whose certificate sandboxes get through SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE) and re-encrypts to the real host, verifying it. Other hosts stay pass-through." }),
  })
  .strict()
  .openapi('EgressSecretInput');

export type SecretInput = z.output<typeof SecretInputSchema>;

export interface SecretView {
  name: string;
  hosts: string[];
  header: string;
  format: string;
  https: boolean;
  updatedAt: string;
}

interface StoredSecret extends Omit<SecretView, 'updatedAt' | 'https'> {
  /** Absent in secrets stored before HTTPS injection: false. */
  https?: boolean;
  /** The value, sealed (tenancy/sealer.ts) for `<tenant>/<name>`. */
  sealed: string;
  updatedAt: number;
}

export class SecretNotFoundError extends KilnError {
  constructor(name: string) {
    super('SecretNotFound', 404, `secret "${name}" does not exist for this tenant`, { name });
  }
}

/** A secret opened for binding to one sandbox: the value leaves the control plane only to its executor. */
export interface OpenedSecret {
  name: string;
  value: string;
  hosts: string[];
  header: string;
  format: string;
  https: boolean;
}

/**
 * Tenants' egress secrets in Redis, each value sealed with the deployment's key (KILN_SECRET_KEY
 * or the data dir's secret.key), bound to its tenant and name so a box moved elsewhere opens to
 * nothing. No API answers a value.
 */
export class SecretStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly sealer: Sealer,
  ) {}

  async put(tenant: string, name: string, input: SecretInput): Promise<SecretView> {
    const stored: StoredSecret = { name, hosts: input.hosts, header: input.header, format: input.format, https: input.https, sealed: this.sealer.seal(input.value, `${tenant}/${name}`), updatedAt: Date.now() };
    await this.redis.hset(this.keys.egressSecrets(tenant), name, JSON.stringify(stored));
    return view(stored);
  }

  async list(tenant: string): Promise<SecretView[]> {
    const all = await this.redis.hvals(this.keys.egressSecrets(tenant));
    return all.map((raw) => view(JSON.parse(raw) as StoredSecret)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The tenant's secret names (no value is opened). */
  async names(tenant: string): Promise<Set<string>> {
    return new Set(await this.redis.hkeys(this.keys.egressSecrets(tenant)));
  }

  async delete(tenant: string, name: string): Promise<void> {
    if ((await this.redis.hdel(this.keys.egressSecrets(tenant), name)) === 0) throw new SecretNotFoundError(name);
  }

  async open(tenant: string, names: readonly string[]): Promise<OpenedSecret[]> {
    return Promise.all(
      names.map(async (name) => {
        const raw = await this.redis.hget(this.keys.egressSecrets(tenant), name);
        const s = raw ? (JSON.parse(raw) as StoredSecret) : undefined;
        const value = s && this.sealer.open(s.sealed, `${tenant}/${name}`);
        if (!s || value === undefined) throw new SecretNotFoundError(name);
        return { name, value, hosts: s.hosts, header: s.header, format: s.format, https: s.https ?? false };
      }),
    );
  }
}

function view(s: StoredSecret): SecretView {
  return { name: s.name, hosts: s.hosts, header: s.header, format: s.format, https: s.https ?? false, updatedAt: new Date(s.updatedAt).toISOString() };
}

/**
 * The environment variable and placeholder a sandbox gets for a secret: random, or derived from
 * `seed` (a function configuration's key, so that all its sandboxes agree). A placeholder is not
 * secret: it means something only to the proxy of a sandbox the secret is bound to.
 */
export function placeholderFor(name: string, seed?: string): { env: string; placeholder: string } {
  const tail = seed === undefined ? randomBytes(16).toString('hex') : createHash('sha256').update(`${seed}\0${name}`).digest('hex').slice(0, 32);
  return { env: `KILN_SECRET_${name.toUpperCase()}`, placeholder: `kiln-secret-${name}-${tail}` };
}
