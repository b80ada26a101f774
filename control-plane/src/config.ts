import { z } from 'zod';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CpuPolicy } from './cpu-policy.js';
import type { QuotaLimits } from './tenancy/quotas.js';
import { PLATFORMS, type PlatformKind } from './templates/template.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A comma-separated list of API keys, each at least 16 printable characters without spaces. */
const keyList = z
  .string()
  .transform((v) =>
    v
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
  )
  .refine((keys) => keys.every((k) => /^[\x21-\x7e]{16,}$/.test(k)), 'every key must be at least 16 printable characters without spaces')
  .default('');

const schema = z.object({
  /** Redis to use; empty starts an embedded redis-server with AOF under KILN_DATA_DIR. */
  KILN_REDIS_URL: z.string().url().optional(),
  /** Prefix of every Redis key and BullMQ queue, so several deployments (or tests) share one Redis. */
  KILN_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]+$/)
    .default('kiln'),
  /** The region in ARNs and the handlers' AWS_REGION / AWS_DEFAULT_REGION (functions/arn.ts). */
  KILN_REGION: z
    .string()
    .regex(/^[a-z0-9-]{1,32}$/, 'lower-case letters, digits and dashes, as an AWS region (us-east-1)')
    .default('us-east-1'),
  /** Where the API listens. Loopback by default: listening elsewhere is a choice (see KILN_API_KEYS). */
  KILN_HOST: z.string().default('127.0.0.1'),
  /** Host names the API answers to (DNS-rebinding guard); default: loopback names when KILN_HOST is loopback, else any. */
  KILN_ALLOWED_HOSTS: z
    .string()
    .transform((v) => v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))
    .default(''),
  /** Origins (scheme://host[:port]) of web pages allowed to call the API besides Kiln's own. */
  KILN_ALLOWED_ORIGINS: z
    .string()
    .transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .refine((list) => list.every((o) => /^https?:\/\/[^/\s]+$/.test(o)), 'expected comma-separated origins such as https://console.example.com')
    .default(''),
  KILN_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  KILN_DATA_DIR: z.string().default(join(REPO_ROOT, '.kiln')),
  KILN_TEMPLATES_DIR: z.string().default(join(REPO_ROOT, 'templates')),
  /** The web console's built files (`npm run build -w console`, which scripts/setup.sh runs); served at `/`. */
  KILN_CONSOLE_DIR: z.string().default(join(REPO_ROOT, 'console', 'dist')),
  /** Where executors run (the platform adapter that starts them), unless a template names its own. */
  KILN_PLATFORM: z.enum(PLATFORMS).optional(),
  /** Deprecated: the old name of KILN_PLATFORM, used when KILN_PLATFORM is unset. */
  KILN_RUNTIME: z.enum(PLATFORMS).optional(),
  /** Docker Engine or Podman API (docker platform): unix:///path.sock or tcp://host:port; default DOCKER_HOST, else /var/run/docker.sock. */
  KILN_DOCKER_HOST: z
    .string()
    .regex(/^(unix|tcp|http):\/\/.+/, 'unix:///path/to/docker.sock or tcp://host:port')
    .optional(),
  /** Network executor containers join; default kiln-executors-<KILN_REDIS_PREFIX>, created as an internal network. */
  KILN_DOCKER_NETWORK: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/)
    .optional(),
  /** seccomp profile that lets bubblewrap work in the container (images/README.md); default <repo>/infra/podman/seccomp.json. */
  KILN_DOCKER_SECCOMP_PROFILE: z.string().optional(),
  /** How long a new executor container may take until its agent answers. */
  KILN_DOCKER_START_TIMEOUT_MS: z.coerce.number().int().min(1000).default(60_000),
  /** Namespace of executor pods (kubernetes platform); default the kubeconfig context's, else `default`. */
  KILN_K8S_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name: lowercase letters, digits and dashes')
    .max(63)
    .optional(),
  /** kubeconfig file; default in-cluster service account credentials, else KUBECONFIG / ~/.kube/config. */
  KILN_K8S_KUBECONFIG: z.string().optional(),
  /** How the control plane reaches an executor pod: its IP, or a per-executor ClusterIP Service. */
  KILN_K8S_SERVICE_MODE: z.enum(['pod-ip', 'service']).default('pod-ip'),
  KILN_K8S_IMAGE_PULL_POLICY: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
  /** seccomp profile of executor pods: Localhost:<path under the kubelet's seccomp dir>, RuntimeDefault (bwrap fails) or Unconfined. */
  KILN_K8S_SECCOMP_PROFILE: z
    .string()
    .regex(/^(RuntimeDefault|Unconfined|Localhost:[^\s]+)$/, 'Localhost:<path>, RuntimeDefault or Unconfined')
    .default('Localhost:kiln/executor-seccomp.json'),
  /** hostUsers: false + procMount: Unmasked (Kubernetes 1.33+); bwrap needs the unmasked /proc. */
  KILN_K8S_USER_NAMESPACES: z.enum(['true', 'false']).default('true'),
  /** Owner of executor objects, garbage-collected with it: <Kind>/<name>[/<uid>], Kind one of Deployment, StatefulSet, Pod, ConfigMap. */
  KILN_K8S_OWNER: z
    .string()
    .regex(
      /^(Deployment|StatefulSet|Pod|ConfigMap)\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?(\/[0-9a-f-]{36})?$/,
      'Deployment/<name>, StatefulSet/<name>, Pod/<name> or ConfigMap/<name>, optionally /<uid>',
    )
    .optional(),
  /** Service account of executor pods (no token is mounted either way). */
  KILN_K8S_SERVICE_ACCOUNT: z.string().optional(),
  /** How long a new executor pod may take to become ready (image pulls count). */
  KILN_K8S_START_TIMEOUT_MS: z.coerce.number().int().min(1000).default(120_000),
  /**
   * Comma-separated IPs/CIDRs whose PROXY lines executor pods' NFS servers believe (the NFS
   * gateway's pods, or the node CIDR when Services SNAT); default this control plane's own addresses.
   */
  KILN_K8S_NFS_TRUSTED_PROXIES: z.string().optional(),
  /** Largest request body accepted by the REST API, in bytes (Lambda's sync limit is 6 MB). */
  KILN_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(6 * 1024 * 1024),
  /**
   * Largest file one request may move through a session's files API (PUT/GET .../files and
   * .../files/tar, and signed file URLs), in bytes; streamed, never buffered. The workspace's
   * diskMB bounds it too. Default 4 GiB.
   */
  KILN_MAX_FILE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(4 * 1024 * 1024 * 1024),
  /**
   * Buckets CreateFunction / UpdateFunctionCode may read Code.S3Bucket from (comma-separated);
   * empty turns S3 code off. A separate client from the blob store's (functions/s3-code.ts).
   */
  KILN_LAMBDA_S3_BUCKETS: z.string().default(''),
  /** The S3-compatible server those buckets are on; unset: AWS S3. */
  KILN_LAMBDA_S3_ENDPOINT: z.string().url().optional(),
  /** Region to sign for; default KILN_S3_REGION. */
  KILN_LAMBDA_S3_REGION: z.string().regex(/^[a-z0-9-]{2,32}$/, 'a region name such as us-east-1').optional(),
  /** `true`: the bucket in the URL path, as most self-hosted S3 servers need. */
  KILN_LAMBDA_S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('false'),
  /** Sockets one client address may hold open at once (0: no cap; raise it behind a reverse proxy). */
  KILN_MAX_CONNECTIONS_PER_CLIENT: z.coerce.number().int().min(0).max(1_000_000).default(256),
  /** A request body that carries no byte for this long has its connection closed (0: never). */
  KILN_BODY_IDLE_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(60_000),
  /** Open MCP sessions one tenant may hold on one replica; at the cap its least recently used one is closed. */
  KILN_MCP_MAX_SESSIONS_PER_TENANT: z.coerce.number().int().min(1).max(100_000).default(64),
  /** Uploads (files, tar, signed links, E2B files) one tenant may stream at once on one replica. */
  KILN_MAX_UPLOADS_PER_TENANT: z.coerce.number().int().min(1).max(100_000).default(16),
  /** Requests a second each client address may make to the public link routes (signed file URLs, code links). */
  KILN_PUBLIC_LINK_RPS: z.coerce.number().int().min(1).max(100_000).default(20),
  /** Execution records are kept this long after they finish. */
  KILN_RESULT_TTL_SECONDS: z.coerce.number().int().min(1).default(3600),
  /** Default and largest handler timeouts. */
  KILN_DEFAULT_TIMEOUT_MS: z.coerce.number().int().min(100).default(3000),
  KILN_MAX_TIMEOUT_MS: z.coerce.number().int().min(1000).default(900_000),
  /**
   * Largest EphemeralStorage.Size (a function's /tmp, in MB) a function may ask for, 512–10240 as
   * on Lambda. /tmp is a tmpfs: what a function writes there is memory, counted in its MemorySize.
   */
  KILN_LAMBDA_MAX_EPHEMERAL_MB: z.coerce.number().int().min(512).max(10240).default(10240),
  /** How long a finished lease waits on its replica for the function's next job; 0 releases at once. */
  KILN_LEASE_HOLD_MS: z.coerce.number().int().min(0).max(1000).default(20),
  /** Scheduling class of the control plane's threads (cpu-policy.ts): batch wakes without preempting. */
  KILN_CPU_POLICY: z.enum(['batch', 'normal']).default('batch'),
  /** A session paused this long is hibernated: /workspace to the blob store, sandbox freed; 0 never. */
  KILN_SESSION_HIBERNATE_AFTER_MS: z.coerce.number().int().min(0).default(3_600_000),
  /** A session paused (or hibernated) this long is ended. */
  KILN_SESSION_PAUSED_RETENTION_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(7 * 24 * 3_600_000),
  /** Snapshots a tenant may keep. */
  KILN_QUOTA_SNAPSHOTS: z.coerce.number().int().min(0).default(50),
  /** The largest named volume, MB (volumes/service.ts). */
  KILN_VOLUME_MAX_MB: z.coerce.number().int().min(1).max(1 << 20).default(10_240),
  /** Each tenant's total size of volumes, MB. */
  KILN_QUOTA_VOLUME_MB: z.coerce.number().int().min(0).default(20_480),
  /** Volumes a tenant may keep. */
  KILN_QUOTA_VOLUMES: z.coerce.number().int().min(0).default(20),
  /** Memory this replica lends to synced-volume archives in flight, all of them together, MB (volumes/transfer-budget.ts). */
  KILN_VOLUME_TRANSFER_MEMORY_MB: z.coerce.number().int().min(16).max(1 << 20).default(2048),
  /** How long a synced-volume transfer waits for that memory before 503 VolumeTransfersBusy, ms. */
  KILN_VOLUME_TRANSFER_WAIT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** A synced volume's sync that gets no byte of its archive for this long is given up, ms (code in the sandbox can stop the tar). */
  KILN_VOLUME_SYNC_IDLE_MS: z.coerce.number().int().min(500).max(600_000).default(15_000),
  /** How long a volume no session uses stays mounted on its host (the local platform's executors), ms. */
  KILN_VOLUME_IDLE_UNMOUNT_MS: z.coerce.number().int().min(0).max(86_400_000).default(10_000),
  /**
   * Stop executors when the control plane stops: `interrupt` (default) only when it is stopped by
   * SIGINT (Ctrl-C of `npm start` in the foreground), leaving them running for a restart or an
   * upgrade (SIGTERM: systemd, docker stop, kubectl) to adopt with their sessions; `true` always,
   * `false` never. The last replica alive decides (scheduler/keeper.ts).
   */
  KILN_STOP_EXECUTORS_ON_EXIT: z.enum(['interrupt', 'true', 'false']).default('interrupt'),
  KILN_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
  /** Label /metrics series of invocations, errors and sessions by tenant. */
  KILN_METRICS_TENANT_LABEL: z.enum(['true', 'false']).default('true'),
  /** Tenants with a label value of their own (per replica); later ones share tenant="_other". */
  KILN_METRICS_MAX_TENANTS: z.coerce.number().int().min(1).max(10_000).default(100),
  /** Comma-separated API keys; empty turns authentication off. Each at least 16 characters, no spaces or commas. */
  KILN_API_KEYS: keyList,
  /**
   * Comma-separated administrator keys (same form as KILN_API_KEYS): they work as API keys and
   * are the only ones that may change templates once any key is configured.
   */
  KILN_ADMIN_API_KEYS: keyList,
  /**
   * 32 bytes (base64 or hex) that seal stored API keys in Redis (SigV4 needs them back). Every
   * replica of a deployment needs the same; unset: made once in KILN_DATA_DIR/secret.key (0600).
   */
  KILN_SECRET_KEY: z.string().optional(),
  /** Default quotas of every tenant (tenancy/quotas.ts); an administrator overrides them per tenant. */
  KILN_QUOTA_SESSIONS: z.coerce.number().int().min(0).default(1000),
  /** Concurrent executions: queued + running, sync and async. */
  KILN_QUOTA_EXECUTIONS: z.coerce.number().int().min(0).default(100_000),
  KILN_QUOTA_FUNCTIONS: z.coerce.number().int().min(0).default(10_000),
  /** Total memory of a tenant's live sessions' sandboxes (each counts its template's memoryMB). */
  KILN_QUOTA_MEMORY_MB: z.coerce.number().int().min(0).default(1_048_576),
  /** Authenticated API requests per second per tenant, counted by each replica on its own. */
  KILN_QUOTA_RPS: z.coerce.number().int().min(0).default(50_000),
  /**
   * Where blobs (function code packages) live (storage/select.ts): `disk` under
   * KILN_DATA_DIR/blobs, `s3` (the KILN_S3_* settings), or `redis`. Default: `s3` when
   * KILN_S3_BUCKET is set, else `disk`. Control planes on several hosts need `s3` or `redis`.
   */
  KILN_BLOB_STORE: z.enum(['disk', 's3', 'redis']).optional(),
  /** The bucket of the S3 blob store (AWS S3 or an S3-compatible server). */
  KILN_S3_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens')
    .optional(),
  /** An S3-compatible server's URL (MinIO, Ceph, ...); AWS S3 when unset. */
  KILN_S3_ENDPOINT: z.string().url().optional(),
  KILN_S3_REGION: z.string().regex(/^[a-z0-9-]{2,32}$/, 'a region name such as us-east-1').default('us-east-1'),
  /** Bucket in the URL path, not the host name: what most self-hosted S3 servers need. */
  KILN_S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('false'),
  /** Object names start with `<prefix>/`, so a bucket can hold several deployments. */
  KILN_S3_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._=-]+(?:\/[A-Za-z0-9._=-]+)*$/, 'path segments of letters, digits and ._=-')
    .default('kiln'),
  /** Executors export each session's /workspace over NFSv3 (one port per executor). */
  KILN_NFS_ENABLED: z.enum(['true', 'false']).default('true'),
  /** Host name NFS clients use to reach executors; goes into every session's nfsUrl. */
  KILN_NFS_HOST: z
    .string()
    .regex(/^[^\s/:?#]+$|^\[[0-9A-Fa-f:.]+\]$/, 'a host name or IP address, e.g. nfs.example.com or 10.0.0.5')
    .default('127.0.0.1'),
  /** Address executors' NFS servers listen on (local platform); 0.0.0.0 exposes them to other machines. */
  KILN_NFS_BIND: z
    .string()
    .regex(/^[^\s:/]+$/, 'an IPv4 address or host name, e.g. 127.0.0.1 or 0.0.0.0')
    .default('127.0.0.1'),
  /**
   * Port of the control plane's single-port NFS gateway (e.g. 2049; 0 picks a free one). When
   * set, every session's nfsUrl points at KILN_NFS_HOST:KILN_NFS_PORT; unset, at its executor.
   */
  KILN_NFS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /**
   * Comma-separated DNS servers (ip or ip:port) local executors' egress proxies resolve allowed
   * names with (executor KILN_EGRESS_DNS); unset: the host's resolvers.
   */
  KILN_EGRESS_DNS: z
    .string()
    .regex(/^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?)(,\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?)*$/, 'comma-separated IPv4 addresses with optional ports, e.g. 192.0.2.53:53')
    .optional(),
  /**
   * The deployment's egress CA (PEM files) that local executors' proxies intercept HTTPS with,
   * for secrets that opt in (`https`). Default: made once in <KILN_DATA_DIR>/egress-ca/.
   */
  KILN_EGRESS_CA_CERT: z.string().optional(),
  KILN_EGRESS_CA_KEY: z.string().optional(),
  /** A PEM file of extra CAs the egress proxies trust when they open TLS to a host themselves. */
  KILN_EGRESS_UPSTREAM_CA: z.string().optional(),
  /** Address the NFS gateway listens on; default KILN_HOST. */
  KILN_NFS_BIND_GATEWAY: z
    .string()
    .regex(/^[^\s/]+$/, 'an IP address or host name, e.g. 0.0.0.0')
    .optional(),
});

export type Config = {
  redisUrl: string | undefined;
  prefix: string;
  host: string;
  port: number;
  /** KILN_ALLOWED_HOSTS (empty: the default for `host`, see api/origin.ts). */
  allowedHosts: string[];
  allowedOrigins: string[];
  dataDir: string;
  templatesDir: string;
  /** KILN_CONSOLE_DIR: the web console's built files. */
  consoleDir: string;
  platform: PlatformKind;
  docker: { host: string; network: string | undefined; seccompProfile: string; startTimeoutMs: number };
  kubernetes: {
    namespace: string | undefined;
    kubeconfig: string | undefined;
    serviceMode: 'pod-ip' | 'service';
    imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
    seccompProfile: string;
    userNamespaces: boolean;
    owner: string | undefined;
    serviceAccount: string | undefined;
    startTimeoutMs: number;
    nfsTrustedProxies: string[] | undefined;
  };
  maxBodyBytes: number;
  /** KILN_MAX_FILE_BYTES: one file upload's or download's largest size through the files API. */
  maxFileBytes: number;
  /** KILN_LAMBDA_S3_*: where Lambda's Code.S3Bucket is read from. */
  lambdaS3: { buckets: string[]; endpoint: string | undefined; region: string; forcePathStyle: boolean };
  /** KILN_PUBLIC_LINK_RPS: per client address, on the routes that take a signed link instead of a key. */
  publicLinkRps: number;
  /** KILN_MAX_CONNECTIONS_PER_CLIENT, KILN_BODY_IDLE_TIMEOUT_MS (api/connection-guard.ts). */
  connections: { perClient: number; bodyIdleMs: number };
  /** KILN_MAX_UPLOADS_PER_TENANT (api/upload-slots.ts). */
  maxUploadsPerTenant: number;
  /** KILN_MCP_MAX_SESSIONS_PER_TENANT (mcp/http.ts). */
  mcpMaxSessionsPerTenant: number;
  resultTtlSeconds: number;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  /** KILN_LAMBDA_MAX_EPHEMERAL_MB: the largest /tmp a function may ask for. */
  maxEphemeralStorageMB: number;
  leaseHoldMs: number;
  /** Paused sessions and snapshots (sessions/lifecycle.ts, sessions/snapshots.ts). */
  sessionLifecycle: { hibernateAfterMs: number; pausedRetentionMs: number; maxSnapshotsPerTenant: number };
  /** Named volumes: the largest, and each tenant's total size and count (KILN_VOLUME_MAX_MB, KILN_QUOTA_VOLUME_MB, KILN_QUOTA_VOLUMES). */
  volumes: { maxSizeMB: number; quotaMB: number; maxPerTenant: number; transferMemoryMB: number; transferWaitMs: number; syncIdleMs: number };
  cpuPolicy: CpuPolicy;
  /** KILN_STOP_EXECUTORS_ON_EXIT; see stopExecutorsFor. */
  stopExecutorsOnExit: boolean | 'interrupt';
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** KILN_REGION: the region in ARNs and in handlers' AWS_REGION. */
  region: string;
  /** How /metrics labels tenants (metrics/tenant-label.ts). */
  metrics: { tenantLabel: { enabled: boolean; maxTenants: number } };
  /** API keys accepted by REST, MCP, PTY and Lambda requests; empty means no authentication. */
  /** Every key that authenticates: KILN_API_KEYS and KILN_ADMIN_API_KEYS. */
  apiKeys: string[];
  /** KILN_ADMIN_API_KEYS: the keys that may change templates. */
  adminApiKeys: string[];
  /** KILN_SECRET_KEY, when set. */
  secretKey: string | undefined;
  /** KILN_QUOTA_*: every tenant's quotas unless its record overrides them. */
  quotas: QuotaLimits;
  repoRoot: string;
  /** Where blobs live (KILN_BLOB_STORE, KILN_S3_*). */
  blobs: BlobStoreConfig;
  /** NFS export of session workspaces; undefined when KILN_NFS_ENABLED=false. */
  nfs: { host: string; bind: string; gateway: { host: string; port: number } | undefined } | undefined;
  /** KILN_EGRESS_DNS, when set: what local executors' egress proxies resolve with. */
  egressDns: string | undefined;
  /** KILN_VOLUME_IDLE_UNMOUNT_MS for the local platform's executors (executor/src/sandbox/volumes.ts). */
  volumeIdleUnmountMs: number;
  /** The egress CA files local executors get (KILN_EGRESS_CA_CERT/KEY, else the data dir's) and KILN_EGRESS_UPSTREAM_CA. */
  egressCa: { cert: string; key: string; upstreamCa: string | undefined };
};

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`invalid configuration: ${variable}: ${detail}`);
    this.name = 'ConfigError';
  }
}

/** Every KILN_* variable the control plane reads (for checks of deployment files). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);

/** Raw env → defaults → validated config. Empty strings count as unset. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('KILN_') && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? 'KILN_*');
    // Secrets are never echoed: start-up errors end up in logs.
    const shown = /KEY|TOKEN|SECRET|PASSWORD/.test(variable) ? '<redacted>' : String(cleaned[variable] ?? '');
    throw new ConfigError(variable, `${issue?.message ?? 'invalid'} (got "${shown}")`);
  }
  const e = parsed.data;
  return {
    redisUrl: e.KILN_REDIS_URL,
    prefix: e.KILN_REDIS_PREFIX,
    host: e.KILN_HOST,
    port: e.KILN_PORT,
    allowedHosts: e.KILN_ALLOWED_HOSTS,
    allowedOrigins: e.KILN_ALLOWED_ORIGINS,
    dataDir: e.KILN_DATA_DIR,
    templatesDir: e.KILN_TEMPLATES_DIR,
    consoleDir: e.KILN_CONSOLE_DIR,
    platform: e.KILN_PLATFORM ?? e.KILN_RUNTIME ?? 'local',
    docker: {
      host: e.KILN_DOCKER_HOST ?? env.DOCKER_HOST ?? 'unix:///var/run/docker.sock',
      network: e.KILN_DOCKER_NETWORK,
      seccompProfile: e.KILN_DOCKER_SECCOMP_PROFILE ?? join(REPO_ROOT, 'infra/podman/seccomp.json'),
      startTimeoutMs: e.KILN_DOCKER_START_TIMEOUT_MS,
    },
    kubernetes: {
      namespace: e.KILN_K8S_NAMESPACE,
      kubeconfig: e.KILN_K8S_KUBECONFIG,
      serviceMode: e.KILN_K8S_SERVICE_MODE,
      imagePullPolicy: e.KILN_K8S_IMAGE_PULL_POLICY,
      seccompProfile: e.KILN_K8S_SECCOMP_PROFILE,
      userNamespaces: e.KILN_K8S_USER_NAMESPACES === 'true',
      owner: e.KILN_K8S_OWNER,
      serviceAccount: e.KILN_K8S_SERVICE_ACCOUNT,
      startTimeoutMs: e.KILN_K8S_START_TIMEOUT_MS,
      nfsTrustedProxies: e.KILN_K8S_NFS_TRUSTED_PROXIES?.split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    },
    maxBodyBytes: e.KILN_MAX_BODY_BYTES,
    maxFileBytes: e.KILN_MAX_FILE_BYTES,
    publicLinkRps: e.KILN_PUBLIC_LINK_RPS,
    connections: { perClient: e.KILN_MAX_CONNECTIONS_PER_CLIENT, bodyIdleMs: e.KILN_BODY_IDLE_TIMEOUT_MS },
    maxUploadsPerTenant: e.KILN_MAX_UPLOADS_PER_TENANT,
    mcpMaxSessionsPerTenant: e.KILN_MCP_MAX_SESSIONS_PER_TENANT,
    lambdaS3: {
      buckets: e.KILN_LAMBDA_S3_BUCKETS.split(',')
        .map((b) => b.trim())
        .filter(Boolean),
      endpoint: e.KILN_LAMBDA_S3_ENDPOINT,
      region: e.KILN_LAMBDA_S3_REGION ?? e.KILN_S3_REGION,
      forcePathStyle: e.KILN_LAMBDA_S3_FORCE_PATH_STYLE === 'true',
    },
    resultTtlSeconds: e.KILN_RESULT_TTL_SECONDS,
    defaultTimeoutMs: e.KILN_DEFAULT_TIMEOUT_MS,
    maxTimeoutMs: e.KILN_MAX_TIMEOUT_MS,
    maxEphemeralStorageMB: e.KILN_LAMBDA_MAX_EPHEMERAL_MB,
    leaseHoldMs: e.KILN_LEASE_HOLD_MS,
    volumes: { maxSizeMB: e.KILN_VOLUME_MAX_MB, quotaMB: e.KILN_QUOTA_VOLUME_MB, maxPerTenant: e.KILN_QUOTA_VOLUMES, transferMemoryMB: e.KILN_VOLUME_TRANSFER_MEMORY_MB, transferWaitMs: e.KILN_VOLUME_TRANSFER_WAIT_MS, syncIdleMs: e.KILN_VOLUME_SYNC_IDLE_MS },
    sessionLifecycle: { hibernateAfterMs: e.KILN_SESSION_HIBERNATE_AFTER_MS, pausedRetentionMs: e.KILN_SESSION_PAUSED_RETENTION_MS, maxSnapshotsPerTenant: e.KILN_QUOTA_SNAPSHOTS },
    cpuPolicy: e.KILN_CPU_POLICY,
    stopExecutorsOnExit: e.KILN_STOP_EXECUTORS_ON_EXIT === 'interrupt' ? 'interrupt' : e.KILN_STOP_EXECUTORS_ON_EXIT === 'true',
    logLevel: e.KILN_LOG_LEVEL,
    region: e.KILN_REGION,
    metrics: { tenantLabel: { enabled: e.KILN_METRICS_TENANT_LABEL === 'true', maxTenants: e.KILN_METRICS_MAX_TENANTS } },
    apiKeys: [...e.KILN_API_KEYS, ...e.KILN_ADMIN_API_KEYS],
    adminApiKeys: e.KILN_ADMIN_API_KEYS,
    secretKey: e.KILN_SECRET_KEY,
    quotas: {
      sessions: e.KILN_QUOTA_SESSIONS,
      executions: e.KILN_QUOTA_EXECUTIONS,
      functions: e.KILN_QUOTA_FUNCTIONS,
      memoryMB: e.KILN_QUOTA_MEMORY_MB,
      requestsPerSecond: e.KILN_QUOTA_RPS,
      volumes: e.KILN_QUOTA_VOLUMES,
      volumeMB: e.KILN_QUOTA_VOLUME_MB,
    },
    blobs: blobStoreConfig(e),
    repoRoot: REPO_ROOT,
    nfs:
      e.KILN_NFS_ENABLED === 'true'
        ? {
            host: e.KILN_NFS_HOST,
            bind: e.KILN_NFS_BIND,
            gateway: e.KILN_NFS_PORT === undefined ? undefined : { host: e.KILN_NFS_BIND_GATEWAY ?? e.KILN_HOST, port: e.KILN_NFS_PORT },
          }
        : undefined,
    egressDns: e.KILN_EGRESS_DNS,
    volumeIdleUnmountMs: e.KILN_VOLUME_IDLE_UNMOUNT_MS,
    egressCa: {
      cert: e.KILN_EGRESS_CA_CERT ?? join(e.KILN_DATA_DIR, 'egress-ca', 'ca.pem'),
      key: e.KILN_EGRESS_CA_KEY ?? join(e.KILN_DATA_DIR, 'egress-ca', 'ca.key'),
      upstreamCa: e.KILN_EGRESS_UPSTREAM_CA,
    },
  };
}

export type BlobStoreConfig =
  | { store: 'disk'; dir: string }
  | { store: 'redis' }
  | { store: 's3'; bucket: string; endpoint: string | undefined; region: string; forcePathStyle: boolean; prefix: string };

function blobStoreConfig(e: z.infer<typeof schema>): BlobStoreConfig {
  const store = e.KILN_BLOB_STORE ?? (e.KILN_S3_BUCKET ? 's3' : 'disk');
  if (store === 'disk') return { store, dir: join(e.KILN_DATA_DIR, 'blobs') };
  if (store === 'redis') return { store };
  if (!e.KILN_S3_BUCKET) throw new ConfigError('KILN_S3_BUCKET', 'is required when KILN_BLOB_STORE=s3');
  return { store, bucket: e.KILN_S3_BUCKET, endpoint: e.KILN_S3_ENDPOINT, region: e.KILN_S3_REGION, forcePathStyle: e.KILN_S3_FORCE_PATH_STYLE === 'true', prefix: e.KILN_S3_PREFIX };
}

/**
 * Whether a stop takes the deployment's executors (and so every session) down with it. With
 * `interrupt`, only SIGINT does: Ctrl-C of a foreground `npm start` means "stop everything I
 * started", while SIGTERM is what service managers send for a restart or an upgrade, after which
 * the next control plane adopts the executors and their sessions. A stop with no signal (an
 * embedder calling `Kiln.stop()`) is treated like Ctrl-C.
 */
export function stopExecutorsFor(setting: boolean | 'interrupt', signal?: string): boolean {
  if (setting !== 'interrupt') return setting;
  return signal === undefined || signal === 'SIGINT';
}
