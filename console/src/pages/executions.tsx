import { useEffect, useState } from 'preact/hooks';
import { api, enc, errorText, ms } from '../api.js';

interface Exec {
  id: string;
  status: string;
  template: string;
  function?: { name: string; version: string };
  startType?: string;
  durationMs: number;
  timings?: { queuedMs: number; scheduleMs: number; initMs: number; handlerMs: number; totalMs: number };
  logs: string;
  error?: { errorType: string; errorMessage: string };
  result?: unknown;
  finishedAt?: string;
}

type Filter = { function?: string; template?: string; status?: string; startType?: string };

/** A page of the history with its filters; each row opens to its timings and logs. */
export function ExecutionList({ filter, refresh = 0 }: { filter: Filter; refresh?: number }) {
  const [rows, setRows] = useState<Exec[]>([]);
  const [next, setNext] = useState<string>();
  const [error, setError] = useState<string>();
  const [open, setOpen] = useState<string>();
  const query = (cursor?: string): string => {
    const q = new URLSearchParams({ limit: '20' });
    for (const [k, v] of Object.entries(filter)) if (v) q.set(k, v);
    if (cursor) q.set('cursor', cursor);
    return q.toString();
  };
  const load = (cursor?: string): void => {
    api<{ executions: Exec[]; nextCursor?: string }>('GET', `/api/v1/executions?${query(cursor)}`).then(
      (page) => {
        setRows((r) => (cursor ? [...r, ...page.executions] : page.executions));
        setNext(page.nextCursor);
        setError(undefined);
      },
      (err: unknown) => setError(errorText(err)),
    );
  };
  useEffect(() => load(), [JSON.stringify(filter), refresh]);
  return (
    <div>
      {error && <p class="error" role="alert">{error}</p>}
      <table aria-label="Executions">
        <thead>
          <tr><th>Finished</th><th>Status</th><th>Function / template</th><th>Start</th><th>Total</th><th><span class="visually-hidden">Details</span></th></tr>
        </thead>
        <tbody>
          {rows.map((r) => [
            <tr key={r.id} class={`status-${r.status}`}>
              <td>{r.finishedAt ? new Date(r.finishedAt).toLocaleString() : '–'}</td>
              <td>{r.status}</td>
              <td>{r.function ? <a href={`#/functions/${enc(r.function.name)}`}>{`${r.function.name}:${r.function.version}`}</a> : r.template}</td>
              <td>{r.startType ?? '–'}</td>
              <td>{ms(r.timings?.totalMs ?? r.durationMs)}</td>
              <td>
                <button aria-expanded={open === r.id} onClick={() => setOpen(open === r.id ? undefined : r.id)}>
                  {open === r.id ? 'Hide' : 'Details'}
                </button>
              </td>
            </tr>,
            open === r.id && (
              <tr key={`${r.id}-d`} class="detail">
                <td colSpan={6}>
                  <p>Id <code>{r.id}</code></p>
                  {r.timings && (
                    <p>
                      queued {ms(r.timings.queuedMs)} · schedule {ms(r.timings.scheduleMs)} · init {ms(r.timings.initMs)} · handler {ms(r.timings.handlerMs)} · total {ms(r.timings.totalMs)}
                    </p>
                  )}
                  {r.error && <p class="error">{`${r.error.errorType}: ${r.error.errorMessage}`}</p>}
                  <pre>{r.logs || '(no logs)'}</pre>
                </td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
      {rows.length === 0 && !error && <p>No executions match.</p>}
      {next && <button onClick={() => load(next)}>More</button>}
    </div>
  );
}

export function Executions() {
  const [filter, setFilter] = useState<Filter>({});
  const [draft, setDraft] = useState<Filter>({});
  const field = (k: keyof Filter) => ({ value: draft[k] ?? '', onInput: (e: { currentTarget: { value: string } }) => setDraft({ ...draft, [k]: e.currentTarget.value }) });
  return (
    <section aria-labelledby="exec-h">
      <h1 id="exec-h">Executions</h1>
      <form class="row filters" onSubmit={(e) => { e.preventDefault(); setFilter({ ...draft }); }} aria-label="Filters">
        <label for="f-fn">Function</label>
        <input id="f-fn" {...field('function')} />
        <label for="f-tpl">Template</label>
        <input id="f-tpl" {...field('template')} />
        <label for="f-status">Status</label>
        <select id="f-status" value={draft.status ?? ''} onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value })}>
          <option value="">any</option><option>succeeded</option><option>failed</option><option>timeout</option>
        </select>
        <label for="f-start">Start</label>
        <select id="f-start" value={draft.startType ?? ''} onChange={(e) => setDraft({ ...draft, startType: e.currentTarget.value })}>
          <option value="">any</option><option>hot</option><option>warm</option><option>cold</option>
        </select>
        <button type="submit">Apply</button>
      </form>
      <ExecutionList filter={filter} />
    </section>
  );
}
