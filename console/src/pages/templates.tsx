import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { usePoll } from '../hooks.js';

interface Template {
  name: string;
  runtimes?: string[];
  network?: unknown;
  pool?: Record<string, number>;
  resources?: Record<string, number>;
}

/** Templates, read-only: changing them is an administrator's API call. */
export function Templates() {
  const { data, error } = usePoll(() => api<{ templates: Template[] }>('GET', '/api/v1/templates'), []);
  const [open, setOpen] = useState<string>();
  return (
    <section aria-labelledby="tpl-h">
      <h1 id="tpl-h">Templates</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <table>
        <thead><tr><th>Name</th><th>Runtimes</th><th>Memory</th><th>Pool</th><th><span class="visually-hidden">Details</span></th></tr></thead>
        <tbody>
          {(data?.templates ?? []).map((t) => [
            <tr key={t.name}>
              <td>{t.name}</td>
              <td>{(t.runtimes ?? []).join(', ')}</td>
              <td>{t.resources?.memoryMB ?? '–'} MB</td>
              <td>{t.pool ? Object.entries(t.pool).map(([k, v]) => `${k} ${v}`).join(', ') : '–'}</td>
              <td><button aria-expanded={open === t.name} onClick={() => setOpen(open === t.name ? undefined : t.name)}>{open === t.name ? 'Hide' : 'Details'}</button></td>
            </tr>,
            open === t.name && (
              <tr key={`${t.name}-d`}>
                <td colSpan={5}><pre>{JSON.stringify(t, null, 2)}</pre></td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
    </section>
  );
}
