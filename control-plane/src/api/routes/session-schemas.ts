import { z } from '@hono/zod-openapi';
import { egressPolicySchema } from '@kiln/executor/egress-policy';
import { SecretNameParam } from '../../egress/secrets.js';
import { LANGUAGE_NAMES } from '../../invocation/languages.js';
import { ErrorSchema } from '../schemas.js';

export const SessionIdParam = z.object({ id: z.string().min(1).max(100).openapi({ param: { name: 'id', in: 'path' }, example: 'ses_0f3c...' }) });

export const SessionVolumeSchema = z
  .object({
    name: z.string().min(1).max(63).openapi({ description: 'The volume\'s name', example: 'datasets' }),
    path: z.string().min(1).max(256).openapi({ description: 'Where it appears in the sandbox: under /mnt/', example: '/mnt/data' }),
    readOnly: z.boolean().optional().openapi({ description: 'Mount it read-only (default false): every write in the sandbox fails with EROFS, enforced by the kernel\'s mount flag' }),
  })
  .strict()
  .openapi('SessionVolume');

export const CreateSessionSchema = z
  .object({
    template: z.string().optional().openapi({ description: 'Template to lease a sandbox of (default nodejs)', example: 'nodejs' }),
    timeoutMs: z.number().int().min(1000).optional().openapi({ description: 'Lifetime from creation (default 3600000; at most the template\'s maxSessionTimeoutMs, 86400000 unless the template says more). Paused time does not count' }),
    idleTimeoutMs: z.number().int().min(1000).optional().openapi({ description: 'Ended after this long without API activity (default 600000)' }),
    env: z.record(z.string()).optional().openapi({ description: 'Environment of every process and terminal in the session' }),
    metadata: z.record(z.string()).optional().openapi({ description: 'Labels to filter GET /sessions by', example: { owner: 'alice' } }),
    resources: z
      .object({ memoryMB: z.number().int().positive(), diskMB: z.number().int().positive(), maxProcesses: z.number().int().positive(), maxOpenFiles: z.number().int().positive() })
      .partial()
      .strict()
      .optional()
      .openapi({ description: 'Upper bounds; sessions run in the template\'s pre-booted sandboxes, so these may not exceed the template\'s' }),
    nfs: z
      .object({
        readOnly: z.boolean().optional().openapi({ description: 'Export /workspace read-only (default false)' }),
        allow: z
          .array(z.string().max(64))
          .optional()
          .openapi({ description: 'Client addresses (IPs or CIDRs, IPv4 or IPv6) that may mount; empty or absent allows every client. A bad entry is 400 InvalidNfsAllowList', example: ['127.0.0.1', '10.0.0.0/8'] }),
      })
      .strict()
      .optional()
      .openapi({ description: 'NFS export of the session\'s /workspace (400 NfsDisabled when KILN_NFS_ENABLED=false)' }),
    network: egressPolicySchema.optional().openapi({
      description:
        'The session\'s egress policy from its first connection (templates with an egress policy only, else 409 NetworkPolicyUnsupported). It must lie within the template\'s policy, widened by its tenant\'s egress grant if an administrator gave one (PUT /api/v1/admin/tenants/{id}/egress-grant); else 400 NetworkPolicyWidens. Changeable later with PUT /api/v1/sessions/{id}/network',
      example: { allow: { domains: ['pypi.org', '*.pythonhosted.org'], ports: [443] } },
    }),
    secrets: z
      .array(SecretNameParam)
      .min(1)
      .max(32)
      .optional()
      .openapi({ description: "Names of the tenant's egress secrets (PUT /api/v1/secrets/{name}) to bind: the environment gets KILN_SECRET_<NAME> = a placeholder, which Kiln's proxy replaces on requests to the secret's hosts. An unknown name is 404 SecretNotFound", example: ['openai'] }),
    autoPause: z.boolean().optional().openapi({ description: 'After idleTimeoutMs without activity, pause the session instead of ending it (default false)' }),
    autoResume: z
      .boolean()
      .optional()
      .openapi({ description: 'A call that needs the sandbox (process, files, PTY, MCP, code, E2B envd, keepalive) resumes a paused session first (default true); false answers 409 SessionPaused' }),
    fromSnapshot: z.string().min(1).max(100).optional().openapi({ description: 'Start with the /workspace of this snapshot (GET /api/v1/snapshots); `template` defaults to the snapshot\'s', example: 'snap_9a1f...' }),
    volumes: z
      .array(SessionVolumeSchema)
      .max(8)
      .optional()
      .openapi({
        description:
          "The tenant's named volumes (POST /api/v1/volumes) to mount. A session with volumes boots a sandbox of its own with them bound (a cold start, never a warm sandbox from the pool). Paths: absolute, normalised, under /mnt/ (one to four plain names), no two the same or one inside another; at most 8. An unknown volume is 404 VolumeNotFound. A local-mode volume mounts on local templates only (else 400 VolumesUnsupportedOnPlatform), a synced one on every platform; a synced volume mounted read-write while another live session does is 409 VolumeInUse (one writer at a time; see POST /api/v1/volumes for the modes and their consistency)",
      }),
  })
  .strict()
  .openapi('CreateSession');

export const SessionNfsSchema = z
  .object({
    host: z.string().openapi({ description: 'Host name clients use (KILN_NFS_HOST)', example: '127.0.0.1' }),
    port: z.number().openapi({ description: 'NFSv3 and MOUNT port (the same one; no portmapper)' }),
    exportPath: z.string().openapi({ description: 'The path to mount: /<session-id> or any directory below it', example: '/ses_0f3c...' }),
    readOnly: z.boolean(),
    allow: z.array(z.string()).openapi({ description: 'Client addresses that may mount; empty allows every client' }),
    url: z.string().openapi({ description: 'libnfs URL (nfs-ls, nfs-cat, nfs-cp)', example: 'nfs://127.0.0.1/ses_0f3c...?nfsport=40123&mountport=40123&version=3' }),
    mountCommand: z.string().openapi({ description: 'The equivalent Linux mount command', example: 'mount -t nfs -o nfsvers=3,tcp,nolock,port=40123,mountport=40123 127.0.0.1:/ses_0f3c... /mnt' }),
  })
  .openapi('SessionNfs');

export const SessionSchema = z
  .object({
    id: z.string(),
    tenant: z.string().openapi({ description: 'The tenant that owns it' }),
    template: z.string(),
    status: z.enum(['running', 'paused', 'lost']).openapi({
      description:
        '`paused`: its processes are frozen (or, with `hibernated`, its /workspace is saved and its sandbox freed); paused time does not count against timeoutMs. `lost`: the sandbox went without anyone ending the session (its executor died or was lost); its processes and files are gone. A lost session is kept for one hour after it was lost (GET and list show it; other operations answer 410 SessionLost; DELETE removes it), then it is unknown (404)',
    }),
    lostReason: z.string().optional().openapi({ description: 'Why the session was lost, e.g. "executor exited"; only when `status` is `lost`', example: 'executor exited' }),
    lostAt: z.string().optional().openapi({ description: 'When the session was lost (ISO 8601); only when `status` is `lost`' }),
    hibernated: z.boolean().optional().openapi({ description: 'Only when paused: its /workspace is in the blob store and its sandbox was freed; resuming restores the files into a new sandbox (processes do not survive)' }),
    pausedAt: z.string().optional().openapi({ description: 'When it was paused (ISO 8601); only when paused' }),
    autoPause: z.boolean(),
    autoResume: z.boolean(),
    lastResumeType: z.enum(['thawed', 'restored']).optional().openapi({ description: 'How it was last resumed: `thawed` (processes kept) or `restored` (files restored into a new sandbox)' }),
    createdAt: z.string(),
    expiresAt: z.string(),
    lastActivityAt: z.string(),
    timeoutMs: z.number(),
    idleTimeoutMs: z.number(),
    metadata: z.record(z.string()),
    nfsUrl: z.string().optional().openapi({ description: 'libnfs URL of /workspace; absent when the executor serves no NFS' }),
    nfs: SessionNfsSchema.optional(),
    volumes: z.array(z.object({ name: z.string(), path: z.string(), readOnly: z.boolean() })).optional().openapi({ description: 'Named volumes mounted in its sandbox, as asked for at create; absent when none' }),
  })
  .openapi('Session');

export const ProcessRequestSchema = z
  .object({
    command: z.string().min(1, 'command must not be empty').openapi({ example: 'python3', description: 'The program, or with `shell: true` a command line for `/bin/bash -l -c`' }),
    shell: z.boolean().optional().openapi({ description: 'Run `command` as a shell command line (`/bin/bash -l -c <command>`, as E2B does); `args` must then be empty' }),
    tag: z.string().min(1).max(256).optional().openapi({ description: 'Background processes: a name to address it by (`/processes/tag:<name>`) instead of its pid; one running process per tag' }),
    keepStdin: z.boolean().optional().openapi({ description: 'Background processes: keep stdin open after `stdin` for `POST /processes/{pid}/stdin`' }),
    args: z.array(z.string()).optional().openapi({ example: ['script.py'] }),
    cwd: z.string().optional().openapi({ description: 'Working directory inside the sandbox (default /workspace)' }),
    env: z.record(z.string()).optional(),
    stdin: z.string().optional().openapi({ description: 'Text written to the process\'s stdin, then closed' }),
    timeoutMs: z.number().int().min(1).max(3_600_000).optional().openapi({ description: 'Kills the process group after this long (default 300000 for run and stream; none for background processes)' }),
    maxOutputBytes: z.number().int().min(1).max(64 * 1024 * 1024).optional().openapi({ description: 'Per-stream output cap (default 1048576); beyond it output is dropped and `truncated` set' }),
  })
  .strict()
  .openapi('ProcessRequest');

export const ProcessResultSchema = z
  .object({
    pid: z.number(),
    exitCode: z.number(),
    signal: z.string(),
    stdout: z.string(),
    stderr: z.string(),
    durationMs: z.number(),
    truncated: z.boolean(),
    stdoutTruncated: z.boolean(),
    stderrTruncated: z.boolean(),
    timedOut: z.boolean(),
  })
  .openapi('ProcessResult');

export const ProcessInfoSchema = z
  .object({
    pid: z.number(),
    tag: z.string().optional(),
    command: z.string(),
    args: z.array(z.string()),
    running: z.boolean(),
    exitCode: z.number().nullable().openapi({ description: 'null while it runs' }),
    signal: z.string(),
    startedAt: z.string(),
    stdout: z.string(),
    stderr: z.string(),
  })
  .openapi('ProcessInfo');

export const FileInfoSchema = z
  .object({ path: z.string(), name: z.string(), type: z.enum(['file', 'dir', 'symlink', 'other']), size: z.number(), mode: z.number(), modifiedAt: z.string(), symlinkTarget: z.string().optional() })
  .openapi('FileInfo');

export const ExecuteSchema = z
  .object({
    code: z.string().min(1, 'code must not be empty'),
    language: z.enum(LANGUAGE_NAMES).optional(),
    event: z.unknown().optional(),
    timeoutMs: z.number().int().min(100).max(900_000).optional(),
  })
  .strict()
  .openapi('SessionExecute');

export const sessionErrors = {
  400: { description: 'Invalid request or a path outside /workspace', content: { 'application/json': { schema: ErrorSchema } } },
  404: { description: 'Unknown session, file or process', content: { 'application/json': { schema: ErrorSchema } } },
  409: { description: 'Conflict', content: { 'application/json': { schema: ErrorSchema } } },
  410: { description: 'SessionLost: the session\'s sandbox is gone (its executor died); create a new session', content: { 'application/json': { schema: ErrorSchema } } },
  429: {
    description: 'QuotaExceeded: the tenant is at a quota (`data.quota`: `sessions` or `memoryMB` on create, `requestsPerSecond` on any call; `data.limit`, `data.used`), or TooManyUploads: the tenant already streams KILN_MAX_UPLOADS_PER_TENANT uploads (files, tar); retry after Retry-After seconds',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  503: { description: 'No capacity or Redis unavailable', content: { 'application/json': { schema: ErrorSchema } } },
};
