import { useState } from 'preact/hooks';
import { ApiError, api, enc, errorText, ms } from '../api.js';
import { usePoll } from '../hooks.js';
import { ExecutionList } from './executions.js';

interface Fn {
  name: string;
  version: string;
  runtime: string;
  handler: string;
  template: string;
  memorySize: number;
  timeout: number;
  codeSize?: number;
  lastModified?: string;
  description?: string;
}

const RUNTIMES = ['nodejs20.x', 'python3.11', 'provided.al2023'];

/** A File's bytes as base64, in chunks (String.fromCharCode on a whole zip overflows the stack). */
async function base64(file: File): Promise<string> {
  const buf = new Uint8Array(await file.arrayBuffer());
  let bin = '';
  for (let i = 0; i < buf.length; i += 0x8000) bin += String.fromCharCode(...buf.subarray(i, i + 0x8000));
  return btoa(bin);
}

function Deploy({ done }: { done: () => void }) {
  const [name, setName] = useState('');
  const [runtime, setRuntime] = useState('nodejs20.x');
  const [handler, setHandler] = useState('index.handler');
  const [file, setFile] = useState<File>();
  const [state, setState] = useState<string>();
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    if (!file) return;
    setState('Deploying…');
    try {
      const zipFile = await base64(file);
      try {
        await api('POST', '/api/v1/functions', { name, runtime, handler, code: { zipFile } });
      } catch (err) {
        // Already there: deploying again updates its code.
        if (!(err instanceof ApiError) || err.status !== 409) throw err;
        await api('PUT', `/api/v1/functions/${enc(name)}`, { runtime, handler, code: { zipFile } });
      }
      setState(`Deployed ${name}`);
      done();
    } catch (err) {
      setState(errorText(err));
    }
  };
  return (
    <form class="card" onSubmit={(e) => void submit(e)} aria-labelledby="deploy-h">
      <h2 id="deploy-h">Deploy from a zip</h2>
      <div class="grid">
        <label for="fn-name">Name</label>
        <input id="fn-name" required pattern="[A-Za-z0-9_-]{1,64}" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <label for="fn-runtime">Runtime</label>
        <select id="fn-runtime" value={runtime} onChange={(e) => setRuntime(e.currentTarget.value)}>
          {RUNTIMES.map((r) => <option key={r}>{r}</option>)}
        </select>
        <label for="fn-handler">Handler</label>
        <input id="fn-handler" required value={handler} onInput={(e) => setHandler(e.currentTarget.value)} />
        <label for="fn-zip">Zip file</label>
        <input id="fn-zip" type="file" accept=".zip,application/zip" required onChange={(e) => setFile(e.currentTarget.files?.[0])} />
      </div>
      <button type="submit">Deploy</button>
      {state && <p role="status">{state}</p>}
    </form>
  );
}

export function Functions() {
  const { data, error, reload } = usePoll(() => api<{ functions: Fn[] }>('GET', '/api/v1/functions'), []);
  return (
    <section aria-labelledby="functions-h">
      <h1 id="functions-h">Functions</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <table>
        <thead>
          <tr><th>Name</th><th>Runtime</th><th>Handler</th><th>Memory</th><th>Timeout</th></tr>
        </thead>
        <tbody>
          {(data?.functions ?? []).map((f) => (
            <tr key={f.name}>
              <td><a href={`#/functions/${enc(f.name)}`}>{f.name}</a></td>
              <td>{f.runtime}</td>
              <td>{f.handler}</td>
              <td>{f.memorySize} MB</td>
              <td>{f.timeout} s</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.functions.length === 0 && <p>No functions yet.</p>}
      <Deploy done={reload} />
    </section>
  );
}

interface Metrics {
  invocations: number;
  errors: number;
  latencyMs?: { p50: number; p90: number; p99: number; max: number };
}

interface Execution {
  id: string;
  status: string;
  result?: unknown;
  resultBase64?: string;
  error?: { errorType: string; errorMessage: string };
  logs: string;
  durationMs: number;
  startType?: string;
}

function Invoke({ name, invoked }: { name: string; invoked: () => void }) {
  const [event, setEvent] = useState('{\n  "hello": "world"\n}');
  const [qualifier, setQualifier] = useState('');
  const [out, setOut] = useState<Execution>();
  const [problem, setProblem] = useState<string>();
  const [busy, setBusy] = useState(false);
  const run = async (e: Event): Promise<void> => {
    e.preventDefault();
    setProblem(undefined);
    let body: unknown;
    try {
      body = JSON.parse(event);
    } catch (err) {
      setProblem(`The event is not JSON: ${(err as Error).message}`);
      return;
    }
    setBusy(true);
    try {
      setOut(await api<Execution>('POST', `/api/v1/functions/${enc(name)}/invocations${qualifier ? `?qualifier=${enc(qualifier)}` : ''}`, body));
      invoked();
    } catch (err) {
      setProblem(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card" onSubmit={(e) => void run(e)} aria-labelledby="invoke-h">
      <h2 id="invoke-h">Invoke</h2>
      <label for="event">Event (JSON)</label>
      <textarea id="event" rows={6} spellcheck={false} value={event} onInput={(e) => setEvent(e.currentTarget.value)} />
      <div class="row">
        <label for="qualifier">Version or alias</label>
        <input id="qualifier" placeholder="$LATEST" value={qualifier} onInput={(e) => setQualifier(e.currentTarget.value)} />
        <button type="submit" disabled={busy}>{busy ? 'Invoking…' : 'Invoke'}</button>
      </div>
      {problem && <p class="error" role="alert">{problem}</p>}
      {out && (
        <div class="result" data-testid="invoke-result">
          <p>
            <strong>{out.status}</strong> in {ms(out.durationMs)} ({out.startType ?? '–'} start)
          </p>
          <h3>Result</h3>
          <pre>{out.error ? `${out.error.errorType}: ${out.error.errorMessage}` : out.resultBase64 !== undefined ? `(bytes, base64) ${out.resultBase64}` : JSON.stringify(out.result, null, 2)}</pre>
          <h3>Logs</h3>
          <pre>{out.logs}</pre>
        </div>
      )}
    </form>
  );
}

interface DeadLetter {
  id: string;
  qualifier: string;
  event: string;
  error: { errorType: string; errorMessage: string };
  logs?: string;
  attempts: number;
  failedAt: string;
}

/** Async invocations that failed every attempt; Replay queues the event again and removes the letter. */
function DeadLetters({ name, replayed }: { name: string; replayed: () => void }) {
  const { data, error, reload } = usePoll(() => api<{ deadLetters: DeadLetter[] }>('GET', `/api/v1/functions/${enc(name)}/dead-letters`), [name], 10_000);
  const [open, setOpen] = useState<string>();
  const [state, setState] = useState<string>();
  const replay = async (d: DeadLetter): Promise<void> => {
    setState(undefined);
    try {
      const { id } = await api<{ id: string }>('POST', `/api/v1/functions/${enc(name)}/dead-letters/${enc(d.id)}/replay`);
      setState(`Replayed ${d.id} as execution ${id}`);
      replayed();
    } catch (err) {
      setState(errorText(err));
    } finally {
      reload();
    }
  };
  const letters = data?.deadLetters ?? [];
  return (
    <div class="card">
      <h2 id="dlq-h">Dead letters</h2>
      {error && <p class="error" role="alert">{error}</p>}
      {state && <p role="status">{state}</p>}
      {letters.length > 0 && (
        <table aria-labelledby="dlq-h">
          <thead><tr><th>Failed</th><th>Version</th><th>Attempts</th><th>Error</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {letters.map((d) => [
              <tr key={d.id}>
                <td>{new Date(d.failedAt).toLocaleString()}</td>
                <td>{d.qualifier}</td>
                <td>{d.attempts}</td>
                <td class="name">{d.error.errorType}: {d.error.errorMessage}</td>
                <td>
                  <button aria-expanded={open === d.id} onClick={() => setOpen(open === d.id ? undefined : d.id)}>{open === d.id ? 'Hide' : 'Details'}</button>{' '}
                  <button onClick={() => void replay(d)} aria-label={`Replay ${d.id}`}>Replay</button>
                </td>
              </tr>,
              open === d.id && (
                <tr key={`${d.id}-d`} class="detail">
                  <td colSpan={5}>
                    <h3>Event</h3>
                    <pre>{d.event}</pre>
                    <h3>Logs of the last attempt</h3>
                    <pre>{d.logs ?? ''}</pre>
                  </td>
                </tr>
              ),
            ])}
          </tbody>
        </table>
      )}
      {data && letters.length === 0 && <p>No dead letters: every queued invocation finished or is still being tried.</p>}
    </div>
  );
}

export function FunctionPage({ name }: { name: string }) {
  const fn = usePoll(() => api<Fn>('GET', `/api/v1/functions/${enc(name)}`), [name]);
  const versions = usePoll(() => api<{ versions: Fn[] }>('GET', `/api/v1/functions/${enc(name)}/versions`), [name]);
  const aliases = usePoll(() => api<{ aliases: Array<{ name: string; functionVersion: string; description?: string }> }>('GET', `/api/v1/functions/${enc(name)}/aliases`), [name]);
  const metrics = usePoll(() => api<Metrics>('GET', `/api/v1/functions/${enc(name)}/metrics`), [name], 5000);
  const [tick, setTick] = useState(0);
  const [problem, setProblem] = useState<string>();
  const publish = async (): Promise<void> => {
    try {
      await api('POST', `/api/v1/functions/${enc(name)}/versions`, {});
      versions.reload();
    } catch (err) {
      setProblem(errorText(err));
    }
  };
  const alias = async (e: Event): Promise<void> => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    try {
      await api('POST', `/api/v1/functions/${enc(name)}/aliases`, { name: data.get('alias') as string, functionVersion: data.get('version') as string });
      form.reset();
      aliases.reload();
    } catch (err) {
      setProblem(errorText(err));
    }
  };
  const remove = async (): Promise<void> => {
    if (!confirm(`Delete function ${name} and all its versions?`)) return;
    await api('DELETE', `/api/v1/functions/${enc(name)}`);
    location.hash = '#/functions';
  };
  const m = metrics.data;
  return (
    <section aria-labelledby="fn-h">
      <p><a href="#/functions">← Functions</a></p>
      <h1 id="fn-h">Function <code>{name}</code></h1>
      {(fn.error ?? problem) && <p class="error" role="alert">{fn.error ?? problem}</p>}
      {fn.data && (
        <p>
          {fn.data.runtime} · {fn.data.handler} · {fn.data.memorySize} MB · {fn.data.timeout} s <button class="danger" onClick={() => void remove()}>Delete</button>
        </p>
      )}
      {m && (
        <dl class="stats" aria-label="Last hour">
          <div><dt>Invocations (1 h)</dt><dd>{m.invocations}</dd></div>
          <div><dt>Errors</dt><dd>{m.errors}</dd></div>
          <div><dt>p50</dt><dd>{ms(m.latencyMs?.p50)}</dd></div>
          <div><dt>p90</dt><dd>{ms(m.latencyMs?.p90)}</dd></div>
          <div><dt>p99</dt><dd>{ms(m.latencyMs?.p99)}</dd></div>
        </dl>
      )}
      <Invoke name={name} invoked={() => { metrics.reload(); setTick((t) => t + 1); }} />
      <div class="card">
        <h2>Versions <button onClick={() => void publish()}>Publish $LATEST</button></h2>
        <ul>
          {(versions.data?.versions ?? []).map((v) => (
            <li key={v.version}>{v.version} {v.description ? `– ${v.description}` : ''} {v.lastModified ? `(${new Date(v.lastModified).toLocaleString()})` : ''}</li>
          ))}
        </ul>
        <h2>Aliases</h2>
        <ul>
          {(aliases.data?.aliases ?? []).map((a) => (
            <li key={a.name}>{a.name} → {a.functionVersion}</li>
          ))}
        </ul>
        <form class="row" onSubmit={(e) => void alias(e)} aria-label="New alias">
          <label for="alias-name">Alias</label>
          <input id="alias-name" name="alias" required />
          <label for="alias-version">Version</label>
          <input id="alias-version" name="version" required />
          <button type="submit">Create alias</button>
        </form>
      </div>
      <DeadLetters name={name} replayed={() => setTick((t) => t + 1)} />
      <div class="card">
        <h2>Recent invocations</h2>
        <ExecutionList filter={{ function: name }} refresh={tick} />
      </div>
    </section>
  );
}
