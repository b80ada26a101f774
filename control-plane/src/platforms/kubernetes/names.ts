import { createHash } from 'node:crypto';

/** Port the executor's gRPC agent (and grpc.health.v1) listens on inside its pod. */
export const AGENT_PORT = 7070;

/** Port the executor's NFS server (NFSv3 + MOUNT) listens on inside its pod. */
export const NFS_PORT = 2049;

/** Label keys on every executor pod, secret and service (`Runtime.list` selects on them). */
export const LABELS = {
  deployment: 'kiln.dev/deployment',
  template: 'kiln.dev/template',
  executor: 'kiln.dev/executor',
} as const;

/**
 * Annotations holding the exact values behind the labels: label values are limited to 63
 * characters of `[A-Za-z0-9_.-]`, while executor ids and Redis prefixes may be longer or use
 * `:`. `list` reads the ids back from these, never from the (possibly hashed) labels.
 */
export const ANNOTATIONS = {
  executorId: 'kiln.dev/executor-id',
  deployment: 'kiln.dev/deployment',
  template: 'kiln.dev/template',
} as const;

/** Key of the agent token in each executor's Secret. */
export const TOKEN_KEY = 'token';

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

function shortHash(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 10);
}

/**
 * A valid label value for `value`: itself when Kubernetes accepts it, else a readable prefix
 * plus a hash of the whole value, so the mapping stays one-to-one in practice and stable
 * across control-plane restarts (selectors are recomputed from the same input).
 */
export function labelValue(value: string): string {
  if (value.length <= 63 && LABEL_VALUE.test(value)) return value;
  const readable = value.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 40).replace(/[^A-Za-z0-9]+$/, '');
  return `${readable ? `${readable}-` : 'h-'}${shortHash(value)}`;
}

/**
 * Name of an executor's pod, Secret and Service: `kiln-<executor-id>`. A Service name must be
 * a DNS-1035 label (63 characters, lowercase, starts with a letter), the strictest of the
 * three, so ids that do not fit are shortened with a hash as in {@link labelValue}.
 */
export function objectName(executorId: string): string {
  const plain = `kiln-${executorId}`;
  if (plain.length <= 63 && DNS_LABEL.test(plain)) return plain;
  const readable = executorId.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40).replace(/-+$/, '');
  return `kiln-${readable ? `${readable}-` : ''}${shortHash(executorId)}`;
}

/** `kiln.dev/deployment=<d>` (plus `kiln.dev/executor=<id>` for one executor). */
export function executorSelector(deployment: string, executorId?: string): string {
  const parts = [`${LABELS.deployment}=${labelValue(deployment)}`];
  if (executorId !== undefined) parts.push(`${LABELS.executor}=${labelValue(executorId)}`);
  return parts.join(',');
}

/** Labels of one executor's objects, including the app.kubernetes.io ones tools group by. */
export function executorLabels(deployment: string, template: string, executorId: string): Record<string, string> {
  return {
    [LABELS.deployment]: labelValue(deployment),
    [LABELS.template]: labelValue(template),
    [LABELS.executor]: labelValue(executorId),
    'app.kubernetes.io/name': 'kiln-executor',
    'app.kubernetes.io/component': 'executor',
    'app.kubernetes.io/part-of': 'kiln',
    'app.kubernetes.io/instance': labelValue(deployment),
    'app.kubernetes.io/managed-by': 'kiln-control-plane',
  };
}

/** Annotations with the exact ids behind the labels. */
export function executorAnnotations(deployment: string, template: string, executorId: string): Record<string, string> {
  return { [ANNOTATIONS.executorId]: executorId, [ANNOTATIONS.deployment]: deployment, [ANNOTATIONS.template]: template };
}
