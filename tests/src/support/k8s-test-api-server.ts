import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { credentials, makeGenericClientConstructor, type Client, type ServiceDefinition } from '@grpc/grpc-js';
import { Pod, Secret, Service } from 'kubernetes-models/v1';

const run = promisify(execFile);

/**
 * KubernetesTestApiServer: a test stand-in for the Kubernetes API server, implementing exactly
 * the subset the kubernetes platform adapter uses, strictly:
 *
 * - pods, secrets and services under /api/v1/namespaces/{ns}/{kind}[/{name}]: create, get,
 *   list (labelSelector incl. `a=b,c`, `!=`, `!k`, `in`, `notin`; fieldSelector on the fields
 *   the real server supports for them), delete, and `watch=true` on pods (JSON lines, with
 *   resourceVersion: a watch from version N replays every later change);
 * - events list (fieldSelector involvedObject.*), GET of seeded apps/v1 Deployments (owners);
 * - every created body is validated against the Kubernetes OpenAPI schema (kubernetes-models),
 *   its namespace must match the path and its names must be DNS names; errors are Kubernetes
 *   `Status` objects (400 BadRequest, 401, 404 NotFound, 409 AlreadyExists, 422 Invalid);
 * - every request is recorded (method, path, query, body) for assertions;
 * - HTTPS with a self-signed certificate for 127.0.0.1 (client-node refuses plain HTTP) and a
 *   bearer token; the kubeconfig written for the adapter carries the CA and the token.
 *
 * Pods do nothing by themselves; a `kubelet` option makes them run. {@link PodmanKubelet} runs
 * each pod for real with `podman kube play`; tests without one drive pod status by hand with
 * `setPodStatus`.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

type Obj = Record<string, unknown> & { metadata: { name: string; namespace: string; labels?: Record<string, string>; resourceVersion?: string; uid?: string; creationTimestamp?: string } };
type WatchEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: Obj; rv: number };

/** Runs pods for the test server (the kubelet's part). */
export interface TestKubelet {
  /** Called after a pod is stored; updates its status through `server.setPodStatus`. */
  podCreated(server: KubernetesTestApiServer, pod: Obj): void;
  podDeleted(server: KubernetesTestApiServer, pod: Obj): Promise<void>;
  close(): Promise<void>;
}

class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const KINDS = { pods: { kind: 'Pod', model: Pod }, secrets: { kind: 'Secret', model: Secret }, services: { kind: 'Service', model: Service } } as const;
type Resource = keyof typeof KINDS;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const FIELDS: Record<string, (o: Obj) => string | undefined> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace,
  'status.phase': (o) => (o.status as { phase?: string } | undefined)?.phase,
  'spec.nodeName': (o) => (o.spec as { nodeName?: string } | undefined)?.nodeName,
  'involvedObject.kind': (o) => (o.involvedObject as { kind?: string } | undefined)?.kind,
  'involvedObject.name': (o) => (o.involvedObject as { name?: string } | undefined)?.name,
};

type Requirement = { key: string; op: 'in' | 'notin' | 'exists' | '!exists'; values: string[] };

/** Parses a label selector as the API server does; throws 400 on anything malformed. */
export function parseLabelSelector(selector: string): Requirement[] {
  const bad = (why: string) => new StatusError(400, 'BadRequest', `unable to parse requirement: ${why} in labelSelector "${selector}"`);
  const reqs: Requirement[] = [];
  // Split on commas outside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (selector !== '') parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    let m: RegExpMatchArray | null;
    let req: Requirement;
    if ((m = p.match(/^(\S+?)\s*(==|=|!=)\s*(\S*)$/))) req = { key: m[1] as string, op: m[2] === '!=' ? 'notin' : 'in', values: [m[3] as string] };
    else if ((m = p.match(/^(\S+)\s+(in|notin)\s+\(([^()]*)\)$/))) req = { key: m[1] as string, op: m[2] as 'in' | 'notin', values: (m[3] as string).split(',').map((v) => v.trim()) };
    else if ((m = p.match(/^!(\S+)$/))) req = { key: m[1] as string, op: '!exists', values: [] };
    else if ((m = p.match(/^(\S+)$/))) req = { key: m[1] as string, op: 'exists', values: [] };
    else throw bad(`"${p}" is not a requirement`);
    if (!LABEL_KEY.test(req.key) || req.key.split('/').pop()!.length > 63) throw bad(`invalid label key "${req.key}"`);
    for (const v of req.values) if (v.length > 63 || !LABEL_VALUE.test(v)) throw bad(`invalid label value "${v}"`);
    reqs.push(req);
  }
  return reqs;
}

function matchesLabels(reqs: Requirement[], labels: Record<string, string> = {}): boolean {
  return reqs.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    if (r.op === 'exists') return has;
    if (r.op === '!exists') return !has;
    if (r.op === 'in') return has && r.values.includes(labels[r.key] as string);
    return !has || !r.values.includes(labels[r.key] as string);
  });
}

/** Parses `a=b,c!=d` over the fields the real server supports for the listed kinds. */
export function parseFieldSelector(selector: string): Array<(o: Obj) => boolean> {
  if (selector === '') return [];
  return selector.split(',').map((p) => {
    const m = p.match(/^([a-zA-Z.]+)(==|=|!=)(.*)$/);
    if (!m) throw new StatusError(400, 'BadRequest', `invalid field selector "${p}"`);
    const get = FIELDS[m[1] as string];
    if (!get) throw new StatusError(400, 'BadRequest', `field label not supported: ${m[1]}`);
    const want = m[3] as string;
    return m[2] === '!=' ? (o: Obj) => get(o) !== want : (o: Obj) => get(o) === want;
  });
}

export class KubernetesTestApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly objects = new Map<string, Obj>();
  private readonly history: Array<WatchEvent & { resource: string }> = [];
  private readonly watchers = new Set<{ resource: string; ns: string; labels: Requirement[]; fields: Array<(o: Obj) => boolean>; res: ServerResponse }>();
  private readonly events: Obj[] = [];
  private rv = 1;
  private readonly injected: Array<{ method: string; path: string; code: number; reason: string }> = [];
  readonly token = randomBytes(16).toString('hex');
  readonly dir = mkdtempSync(join(tmpdir(), 'kiln-k8s-api-'));
  readonly kubeconfigPath = join(this.dir, 'kubeconfig');
  url = '';
  /** PEM of the server's self-signed certificate (its own CA). */
  ca = '';

  private constructor(
    private readonly http: Server,
    private readonly kubelet: TestKubelet | undefined,
  ) {}

  /** Starts the server on 127.0.0.1:0 and writes a kubeconfig pointing at it (namespace `defaultNamespace`). */
  static async start(opts: { kubelet?: TestKubelet; defaultNamespace?: string } = {}): Promise<KubernetesTestApiServer> {
    const certDir = mkdtempSync(join(tmpdir(), 'kiln-k8s-cert-'));
    let tls: { key: Buffer; cert: Buffer };
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=kiln-test-api', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' });
      tls = { key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) };
    } finally {
      rmSync(certDir, { recursive: true, force: true });
    }
    const http = createServer(tls);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const self = new KubernetesTestApiServer(http, opts.kubelet);
    self.ca = tls.cert.toString('utf8');
    // handle() answers every failure with a Status; it never rejects.
    http.on('request', (req: IncomingMessage, res: ServerResponse) => void self.handle(req, res));
    self.url = `https://127.0.0.1:${(http.address() as AddressInfo).port}`;
    const kubeconfig = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server: self.url, 'certificate-authority-data': tls.cert.toString('base64') } }],
      users: [{ name: 'test', user: { token: self.token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'test', namespace: opts.defaultNamespace ?? 'default' } }],
      'current-context': 'test',
    };
    writeFileSync(self.kubeconfigPath, JSON.stringify(kubeconfig), { mode: 0o600 });
    return self;
  }

  /** Stores an object (e.g. the owner Deployment) as if it existed; returns it with its uid. */
  seed(resource: string, obj: Obj): Obj {
    obj.metadata.uid ??= randomUUID();
    obj.metadata.resourceVersion = String(++this.rv);
    this.objects.set(`${resource}/${obj.metadata.namespace}/${obj.metadata.name}`, obj);
    return obj;
  }

  /** The stored objects of one kind in one namespace. */
  stored(resource: Resource, ns: string): Obj[] {
    return [...this.objects.entries()].filter(([k]) => k.startsWith(`${resource}/${ns}/`)).map(([, v]) => v);
  }

  get(resource: Resource, ns: string, name: string): Obj | undefined {
    return this.objects.get(`${resource}/${ns}/${name}`);
  }

  /** Replaces a pod's status (as the kubelet would) and notifies watchers. */
  setPodStatus(ns: string, name: string, status: Record<string, unknown>, nodeName?: string): void {
    const pod = this.get('pods', ns, name);
    if (!pod) return;
    const next: Obj = { ...pod, status, ...(nodeName ? { spec: { ...(pod.spec as object), nodeName } } : {}) };
    this.put('pods', next, 'MODIFIED');
  }

  /** A raw HTTPS request, for tests of the server's own validation; `auth: false` omits the token. */
  call(method: string, path: string, body?: unknown, auth = true): Promise<{ status: number; body: { kind: string; reason: string; message: string } }> {
    return new Promise((resolve, reject) => {
      const headers = { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${this.token}` } : {}) };
      const req = request(`${this.url}${path}`, { method, headers, ca: this.ca }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { kind: string; reason: string; message: string } }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  /** Answers the next `method path` request with a Status error (e.g. a 404 from a race). */
  injectStatus(method: string, path: string, code: number, reason: string): void {
    this.injected.push({ method, path, code, reason });
  }

  /** Records an Event about a pod (the adapter quotes them in start errors). */
  addEvent(ns: string, pod: string, reason: string, message: string, type = 'Warning'): void {
    this.events.push({ metadata: { name: `${pod}.${randomBytes(4).toString('hex')}`, namespace: ns }, involvedObject: { kind: 'Pod', name: pod, namespace: ns }, reason, message, type });
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    try {
      if (this.kubelet) {
        for (const [key, pod] of this.objects) if (key.startsWith('pods/')) await this.kubelet.podDeleted(this, pod);
        await this.kubelet.close();
      }
    } finally {
      this.http.closeAllConnections();
      await new Promise<void>((resolve) => this.http.close(() => resolve()));
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  private put(resource: string, obj: Obj, type: WatchEvent['type']): void {
    const rv = ++this.rv;
    obj.metadata.resourceVersion = String(rv);
    if (type === 'DELETED') this.objects.delete(`${resource}/${obj.metadata.namespace}/${obj.metadata.name}`);
    else this.objects.set(`${resource}/${obj.metadata.namespace}/${obj.metadata.name}`, obj);
    const event = { type, object: obj, rv, resource };
    this.history.push(event);
    for (const w of this.watchers) if (this.watchMatches(w, event)) w.res.write(`${JSON.stringify({ type, object: obj })}\n`);
  }

  private watchMatches(w: { resource: string; ns: string; labels: Requirement[]; fields: Array<(o: Obj) => boolean> }, e: { resource: string; object: Obj }): boolean {
    return w.resource === e.resource && e.object.metadata.namespace === w.ns && matchesLabels(w.labels, e.object.metadata.labels) && w.fields.every((f) => f(e.object));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    let body: unknown;
    try {
      const raw = await new Promise<string>((resolve, reject) => {
        let s = '';
        req.on('data', (d: Buffer) => (s += d.toString('utf8')));
        req.on('end', () => resolve(s));
        req.on('error', reject);
      });
      this.requests.push({ method: req.method ?? '', path: url.pathname, query, body: raw ? (JSON.parse(raw) as unknown) : undefined });
      body = raw ? JSON.parse(raw) : undefined;
      if (req.headers.authorization !== `Bearer ${this.token}`) throw new StatusError(401, 'Unauthorized', 'Unauthorized');
      const fault = this.injected.findIndex((f) => f.method === req.method && f.path === url.pathname);
      if (fault >= 0) {
        const f = this.injected.splice(fault, 1)[0] as { code: number; reason: string };
        throw new StatusError(f.code, f.reason, `injected ${f.reason} for ${req.method} ${url.pathname}`);
      }
      await this.route(req.method ?? 'GET', url.pathname, query, body, res);
    } catch (err) {
      const e = err instanceof StatusError ? err : new StatusError(err instanceof SyntaxError ? 400 : 500, err instanceof SyntaxError ? 'BadRequest' : 'InternalError', (err as Error).message);
      if (res.headersSent) return void res.end();
      res.writeHead(e.code, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: e.message, reason: e.reason, code: e.code }));
    }
  }

  private async route(method: string, path: string, query: Record<string, string>, body: unknown, res: ServerResponse): Promise<void> {
    const send = (code: number, obj: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(obj));
    };
    const deploy = path.match(/^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)$/);
    if (deploy && method === 'GET') {
      const obj = this.objects.get(`deployments/${deploy[1]}/${deploy[2]}`);
      if (!obj) throw new StatusError(404, 'NotFound', `deployments.apps "${deploy[2]}" not found`);
      return send(200, obj);
    }
    const m = path.match(/^\/api\/v1\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?$/);
    if (!m) throw new StatusError(404, 'NotFound', `the server could not find the requested resource (${method} ${path})`);
    const [, ns, resource, name] = m as unknown as [string, string, string, string | undefined];
    if (!DNS_LABEL.test(ns)) throw new StatusError(400, 'BadRequest', `invalid namespace "${ns}"`);
    if (resource === 'events' && method === 'GET' && !name) {
      const fields = parseFieldSelector(query.fieldSelector ?? '');
      return send(200, { kind: 'EventList', apiVersion: 'v1', metadata: {}, items: this.events.filter((e) => e.metadata.namespace === ns && fields.every((f) => f(e))) });
    }
    if (!(resource in KINDS)) throw new StatusError(404, 'NotFound', `the server could not find the requested resource (${resource})`);
    const r = resource as Resource;
    if (name !== undefined && !DNS_SUBDOMAIN.test(name)) throw new StatusError(400, 'BadRequest', `invalid name "${name}"`);
    if (method === 'POST' && !name) return send(201, this.create(r, ns, body));
    if (method === 'GET' && name) {
      const obj = this.get(r, ns, name);
      if (!obj) throw new StatusError(404, 'NotFound', `${r} "${name}" not found`);
      return send(200, obj);
    }
    if (method === 'GET') {
      const labels = parseLabelSelector(query.labelSelector ?? '');
      const fields = parseFieldSelector(query.fieldSelector ?? '');
      if (query.watch === 'true' || query.watch === '1') return this.watch(r, ns, labels, fields, query.resourceVersion, res);
      const items = this.stored(r, ns).filter((o) => matchesLabels(labels, o.metadata.labels) && fields.every((f) => f(o)));
      return send(200, { kind: `${KINDS[r].kind}List`, apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) }, items });
    }
    if (method === 'DELETE' && name) {
      const obj = this.get(r, ns, name);
      if (!obj) throw new StatusError(404, 'NotFound', `${r} "${name}" not found`);
      this.put(r, obj, 'DELETED');
      // As in Kubernetes, the API deletion succeeds whatever the kubelet's cleanup does; a
      // failed cleanup is recorded as an event, and tests check Podman for leftovers.
      if (r === 'pods' && this.kubelet) await this.kubelet.podDeleted(this, obj).catch((err: Error) => this.addEvent(ns, obj.metadata.name, 'FailedKillPod', err.message));
      return send(200, r === 'pods' ? obj : { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, kind: r } });
    }
    throw new StatusError(405, 'MethodNotAllowed', `${method} is not supported on ${path} by this test server`);
  }

  private create(r: Resource, ns: string, body: unknown): Obj {
    const { kind, model } = KINDS[r];
    const obj = body as Obj;
    if (!obj || typeof obj !== 'object' || obj.kind !== kind || obj.apiVersion !== 'v1') throw new StatusError(400, 'BadRequest', `expected a v1 ${kind} body, got ${JSON.stringify((obj as { kind?: unknown })?.kind)}`);
    const meta = obj.metadata;
    if (!meta?.name || !(r === 'services' ? DNS_LABEL : DNS_SUBDOMAIN).test(meta.name) || meta.name.length > (r === 'services' ? 63 : 253)) throw new StatusError(422, 'Invalid', `${kind} "${meta?.name}" is invalid: metadata.name must be a DNS ${r === 'services' ? 'label' : 'subdomain'}`);
    if (meta.namespace !== undefined && meta.namespace !== ns) throw new StatusError(400, 'BadRequest', `the namespace of the provided object (${meta.namespace}) does not match the namespace sent on the request (${ns})`);
    for (const [k, v] of Object.entries(meta.labels ?? {})) if (!LABEL_KEY.test(k) || v.length > 63 || !LABEL_VALUE.test(v)) throw new StatusError(422, 'Invalid', `${kind} "${meta.name}" is invalid: metadata.labels: Invalid value: "${k}=${v}"`);
    try {
      new model(obj).validate();
    } catch (err) {
      throw new StatusError(422, 'Invalid', `${kind} "${meta.name}" is invalid: ${(err as Error).message}`);
    }
    if (this.get(r, ns, meta.name)) throw new StatusError(409, 'AlreadyExists', `${r} "${meta.name}" already exists`);
    const stored: Obj = { ...obj, metadata: { ...meta, namespace: ns, uid: randomUUID(), creationTimestamp: new Date().toISOString() } };
    if (r === 'pods') stored.status = { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False' }] };
    this.put(r, stored, 'ADDED');
    if (r === 'pods') this.kubelet?.podCreated(this, stored);
    return stored;
  }

  private watch(resource: Resource, ns: string, labels: Requirement[], fields: Array<(o: Obj) => boolean>, from: string | undefined, res: ServerResponse): void {
    // With a resourceVersion: every later change, from history. Without: the current state as ADDED.
    const since = from ? Number(from) : undefined;
    if (since !== undefined && !Number.isInteger(since)) throw new StatusError(400, 'BadRequest', `invalid resourceVersion "${from}"`);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w = { resource, ns, labels, fields, res };
    const replay = since !== undefined ? this.history.filter((e) => e.rv > since) : this.stored(resource, ns).map((object) => ({ type: 'ADDED' as const, object, rv: 0, resource }));
    for (const e of replay) if (this.watchMatches(w, e)) res.write(`${JSON.stringify({ type: e.type, object: e.object })}\n`);
    this.watchers.add(w);
    res.on('close', () => this.watchers.delete(w));
  }
}

/** grpc.health.v1.Health/Check, encoded by hand (the kubelet's grpc probe). */
const HEALTH: ServiceDefinition = {
  check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: () => Buffer.alloc(0),
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => ({ status: b[0] === 0x08 ? b[1] : 0 }),
  },
};
const HealthClient = makeGenericClientConstructor(HEALTH, 'Health');

/** One grpc.health.v1 Check; resolves true when the server says SERVING (1). */
export function grpcHealthCheck(address: string, timeoutMs = 1000): Promise<boolean> {
  const client = new HealthClient(address, credentials.createInsecure()) as unknown as Client & { check: (req: object, opts: object, cb: (err: Error | null, res?: { status: number }) => void) => void };
  return new Promise<boolean>((resolve) => {
    client.check({}, { deadline: Date.now() + timeoutMs }, (err, res) => resolve(!err && res?.status === 1));
  }).finally(() => client.close());
}

/**
 * Runs each pod for real with `podman kube play`, as a kubelet would: env from Secret refs is
 * resolved, fields Podman 4 ignores are applied its own way (`procMount: Unmasked` through an
 * OCI precreate hook that clears the masked and read-only /proc paths, as CRI runtimes do;
 * `hostUsers: false` as `--userns=auto`), emptyDirs get per-pod volume names, container ports
 * are not published on the host (a pod IP needs no host port) and the grpc probes are run by
 * this class: Ready once grpc.health.v1 on the pod IP says SERVING.
 */
export class PodmanKubelet implements TestKubelet {
  readonly dir = mkdtempSync(join(tmpdir(), 'kiln-kubelet-'));
  readonly containersConf = join(this.dir, 'containers.conf');
  private readonly running = new Map<string, Promise<void>>();
  private readonly volumes = new Map<string, string[]>();
  /** Pods deleted from the API: their probe loop stops. */
  private readonly deleted = new Set<string>();

  /** `baseConf`: the containers.conf of the repo's Podman setup (startPodman's `containersConf`). */
  constructor(baseConf: string, infraImage = 'localhost/kiln/executor:0.1.0') {
    const hook = join(this.dir, 'unmask-proc.mjs');
    writeFileSync(hook, `#!${process.execPath}\nlet s = '';\nprocess.stdin.on('data', (d) => (s += d)).on('end', () => {\n  const c = JSON.parse(s);\n  c.linux.maskedPaths = [];\n  c.linux.readonlyPaths = [];\n  process.stdout.write(JSON.stringify(c));\n});\n`);
    chmodSync(hook, 0o755);
    mkdirSync(join(this.dir, 'hooks'));
    writeFileSync(join(this.dir, 'hooks/unmask-proc.json'), JSON.stringify({ version: '1.0.0', hook: { path: hook }, when: { annotations: { '^kiln\\.test/unmask-proc$': '^true$' } }, stages: ['precreate'] }));
    // The infra container holds the pod's network namespace; Podman's default needs catatonit,
    // so the executor image with `sleep infinity` stands in for the pause image.
    const engine = `[engine]\nhooks_dir = ["${join(this.dir, 'hooks')}"]\ninfra_image = "${infraImage}"\ninfra_command = "/usr/bin/sleep infinity"\n`;
    writeFileSync(this.containersConf, readFileSync(baseConf, 'utf8').replace(/^\[engine\]\s*$/m, engine));
  }

  podman(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return run('podman', args, { env: { ...process.env, CONTAINERS_CONF: this.containersConf }, maxBuffer: 16 * 1024 * 1024 });
  }

  podCreated(server: KubernetesTestApiServer, pod: Obj): void {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    // Failures become pod status and events, as a kubelet reports them; nothing is thrown here.
    this.running.set(key, this.runPod(server, pod).catch((err: Error) => server.addEvent(pod.metadata.namespace, pod.metadata.name, 'KubeletError', err.message)));
  }

  private async runPod(server: KubernetesTestApiServer, pod: Obj): Promise<void> {
    const ns = pod.metadata.namespace;
    const name = pod.metadata.name;
    const spec = structuredClone(pod.spec) as { hostUsers?: boolean; containers: Array<Record<string, unknown> & { name: string; env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>; securityContext?: { procMount?: string }; volumeMounts?: Array<{ name: string }> }>; volumes?: Array<{ name: string }> };
    const containers: Array<Record<string, unknown> & { name: string }> = [];
    let unmask = false;
    for (const c of spec.containers) {
      const env = [];
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) {
          env.push(e);
          continue;
        }
        const data = (server.get('secrets', ns, ref.name)?.data as Record<string, string> | undefined)?.[ref.key];
        if (data === undefined) {
          server.addEvent(ns, name, 'Failed', `Error: secret "${ref.name}" not found`);
          return server.setPodStatus(ns, name, { phase: 'Pending', containerStatuses: [{ name: c.name, ready: false, restartCount: 0, image: '', imageID: '', state: { waiting: { reason: 'CreateContainerConfigError', message: `secret "${ref.name}" not found` } } }] });
        }
        env.push({ name: e.name, value: Buffer.from(data, 'base64').toString('utf8') });
      }
      unmask ||= c.securityContext?.procMount === 'Unmasked';
      const rest: Record<string, unknown> & { name: string } = { ...c };
      delete rest.ports;
      delete rest.readinessProbe;
      delete rest.livenessProbe;
      containers.push({ ...rest, env, volumeMounts: (c.volumeMounts ?? []).map((m) => ({ ...m, name: `${name}-${m.name}` })) });
    }
    const volumes = (spec.volumes ?? []).map((v) => ({ ...v, name: `${name}-${v.name}` }));
    this.volumes.set(`${ns}/${name}`, volumes.map((v) => v.name));
    const yaml = { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: pod.metadata.labels, annotations: unmask ? { 'kiln.test/unmask-proc': 'true' } : {} }, spec: { restartPolicy: 'Never', containers, volumes } };
    const file = join(this.dir, `${name}.json`);
    writeFileSync(file, JSON.stringify(yaml));
    server.setPodStatus(ns, name, { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] }, 'podman-node');
    const { stderr } = await this.podman(['kube', 'play', ...(spec.hostUsers === false ? ['--userns=auto'] : []), file]).catch((err: { stderr?: string; message: string }) => ({ stderr: `kube play failed: ${err.stderr ?? err.message}` }));
    if (stderr.includes('kube play failed')) {
      server.addEvent(ns, name, 'Failed', stderr);
      return server.setPodStatus(ns, name, { phase: 'Failed', containerStatuses: [] });
    }
    const infra = (await this.podman(['pod', 'inspect', name, '--format', '{{.InfraContainerID}}'])).stdout.trim();
    const ip = (await this.podman(['inspect', infra, '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'])).stdout.trim();
    const status = (ready: boolean, state: object) => ({
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: containers.map((c) => ({ name: c.name, ready, restartCount: 0, image: String(c.image), imageID: '', started: true, state })),
    });
    server.setPodStatus(ns, name, status(false, { running: { startedAt: new Date().toISOString() } }));
    // The readiness probe: every 200 ms until SERVING, the container exits, or the pod is deleted.
    while (!this.deleted.has(`${ns}/${name}`)) {
      if (await grpcHealthCheck(`${ip}:7070`)) return server.setPodStatus(ns, name, status(true, { running: { startedAt: new Date().toISOString() } }));
      const state = (await this.podman(['inspect', `${name}-${containers[0]?.name}`, '--format', '{{.State.Status}} {{.State.ExitCode}}']).catch(() => ({ stdout: 'gone 0' }))).stdout.trim().split(' ');
      if (state[0] === 'exited' || state[0] === 'gone') {
        const logs = await this.podman(['logs', '--tail', '20', `${name}-${containers[0]?.name}`]).then((r) => r.stdout + r.stderr, () => '');
        server.addEvent(ns, name, 'BackOff', `container exited: ${logs}`);
        return server.setPodStatus(ns, name, { ...status(false, { terminated: { exitCode: Number(state[1]), reason: 'Error' } }), phase: 'Failed' });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async podDeleted(_server: KubernetesTestApiServer, pod: Obj): Promise<void> {
    const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    this.deleted.add(key);
    await this.running.get(key);
    this.running.delete(key);
    // Podman sometimes finds the container's shm still busy right after the stop ("device or
    // resource busy"); a kubelet retries its cleanup too. The last failure is thrown.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.podman(['pod', 'rm', '-f', '-t', '0', '--ignore', pod.metadata.name]);
        break;
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 300 * attempt));
      }
    }
    const volumes = this.volumes.get(key) ?? [];
    if (volumes.length) await this.podman(['volume', 'rm', '-f', ...volumes]);
    this.volumes.delete(key);
  }

  /** Names of the pods Podman runs now (to check that nothing is left). */
  async podNames(): Promise<string[]> {
    const { stdout } = await this.podman(['pod', 'ps', '--format', '{{.Name}}']);
    return stdout.split('\n').filter(Boolean);
  }

  async close(): Promise<void> {
    await Promise.all(this.running.values());
    rmSync(this.dir, { recursive: true, force: true });
  }
}
