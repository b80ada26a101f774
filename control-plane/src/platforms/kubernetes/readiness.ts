import { Watch, type CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { KilnError } from '../../errors.js';

/** An executor pod did not become ready; the message carries its last status and events. */
export class PodStartError extends KilnError {
  constructor(executorId: string, pod: string, why: string, detail: string) {
    super('ExecutorStartFailed', 503, `executor ${executorId} (pod ${pod}) did not start: ${why}${detail ? `\n${detail}` : ''}`, { executorId, pod }, true);
  }
}

/** Waiting reasons that never resolve by themselves: fail at once instead of at the timeout. */
const FATAL_WAITING = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

type Verdict = { ready: true } | { ready: false; fatal?: string };

/** What one observed pod state means for start(). */
function judge(pod: V1Pod): Verdict {
  const phase = pod.status?.phase;
  if (pod.metadata?.deletionTimestamp) return { ready: false, fatal: 'the pod is being deleted' };
  if (phase === 'Failed' || phase === 'Succeeded') return { ready: false, fatal: `the pod ended in phase ${phase}` };
  for (const c of pod.status?.containerStatuses ?? []) {
    const waiting = c.state?.waiting;
    if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) return { ready: false, fatal: `container ${c.name}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}` };
    if (c.state?.terminated) return { ready: false, fatal: `container ${c.name} exited with code ${c.state.terminated.exitCode} (${c.state.terminated.reason ?? 'no reason'})` };
  }
  const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  return ready && pod.status?.podIP ? { ready: true } : { ready: false };
}

/** One line per condition and container state, for error messages. */
export function describePod(pod: V1Pod | undefined): string {
  if (!pod) return 'last status: never seen';
  const s = pod.status;
  const conditions = (s?.conditions ?? []).map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}`).join(', ');
  const containers = (s?.containerStatuses ?? []).map((c) => `${c.name}: ${JSON.stringify(c.state ?? {})}`).join('; ');
  return `last status: phase=${s?.phase ?? 'unknown'}${conditions ? `, ${conditions}` : ''}${containers ? `; ${containers}` : ''}`;
}

/** The pod's events, oldest first, as "Reason: message" lines. */
async function podEvents(core: CoreV1Api, namespace: string, name: string): Promise<string> {
  try {
    const events = await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.kind=Pod,involvedObject.name=${name}` });
    const lines = events.items.map((e) => `  ${e.type ?? ''} ${e.reason ?? ''}: ${e.message ?? ''}`);
    return lines.length ? `events:\n${lines.join('\n')}` : 'events: none';
  } catch (err) {
    // The events only decorate the error being built; their absence is stated, not thrown.
    return `events: unavailable (${(err as Error).message})`;
  }
}

export interface ReadinessWait {
  kc: KubeConfig;
  core: CoreV1Api;
  namespace: string;
  pod: string;
  executorId: string;
  /** resourceVersion of the created pod: the watch starts there, so no update is missed. */
  resourceVersion: string | undefined;
  timeoutMs: number;
}

/**
 * Watches the pod (field selector on its name) until its Ready condition is True, a state that
 * cannot recover is seen, or `timeoutMs` passes. A watch the server closes early is resumed
 * from the last resourceVersion seen (or from a fresh read after 410 Gone).
 */
export async function waitForPodReady(w: ReadinessWait): Promise<V1Pod> {
  const deadline = Date.now() + w.timeoutMs;
  let last: V1Pod | undefined;
  let resourceVersion = w.resourceVersion;
  const path = `/api/v1/namespaces/${encodeURIComponent(w.namespace)}/pods`;
  while (Date.now() < deadline) {
    const outcome = await new Promise<{ pod?: V1Pod; fatal?: string; gone?: boolean }>((resolve) => {
      let controller: AbortController | undefined;
      let settled = false;
      const finish = (r: { pod?: V1Pod; fatal?: string; gone?: boolean }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        controller?.abort();
        resolve(r);
      };
      const timer = setTimeout(() => finish({}), Math.max(0, deadline - Date.now()));
      const onEvent = (phase: string, obj: V1Pod & { code?: number }) => {
        if (phase === 'ERROR') return finish({ gone: obj.code === 410 });
        if (obj.metadata?.name !== w.pod) return;
        last = obj;
        resourceVersion = obj.metadata.resourceVersion ?? resourceVersion;
        if (phase === 'DELETED') return finish({ fatal: 'the pod was deleted' });
        const verdict = judge(obj);
        if (verdict.ready) return finish({ pod: obj });
        if (verdict.fatal) return finish({ fatal: verdict.fatal });
      };
      new Watch(w.kc)
        .watch(path, { fieldSelector: `metadata.name=${w.pod}`, resourceVersion, allowWatchBookmarks: false }, onEvent, () => finish({}))
        .then(
          (c) => (settled ? c.abort() : (controller = c)),
          // A failed connection ends this round; the loop below reads the pod and retries.
          () => finish({}),
        );
    });
    if (outcome.pod) return outcome.pod;
    if (outcome.fatal) throw new PodStartError(w.executorId, w.pod, outcome.fatal, `${describePod(last)}\n${await podEvents(w.core, w.namespace, w.pod)}`);
    if (Date.now() >= deadline) break;
    // The watch ended without an answer (server timeout, 410 Gone, a dropped connection):
    // read the pod once, which also yields a current resourceVersion to resume from.
    try {
      last = await w.core.readNamespacedPod({ name: w.pod, namespace: w.namespace });
      resourceVersion = last.metadata?.resourceVersion;
      const verdict = judge(last);
      if (verdict.ready) return last;
      if (verdict.fatal) throw new PodStartError(w.executorId, w.pod, verdict.fatal, `${describePod(last)}\n${await podEvents(w.core, w.namespace, w.pod)}`);
    } catch (err) {
      if (err instanceof PodStartError) throw err;
      if ((err as { code?: number }).code === 404) throw new PodStartError(w.executorId, w.pod, 'the pod was deleted', describePod(last));
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  // A pod that never changed sent no watch event: read it once so the error shows its state.
  last = await w.core.readNamespacedPod({ name: w.pod, namespace: w.namespace }).catch(() => last);
  throw new PodStartError(w.executorId, w.pod, `not ready within ${w.timeoutMs} ms (KILN_K8S_START_TIMEOUT_MS)`, `${describePod(last)}\n${await podEvents(w.core, w.namespace, w.pod)}`);
}
