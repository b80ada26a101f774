import { useState } from 'preact/hooks';
import { api, enc, errorText } from '../api.js';
import { usePoll } from '../hooks.js';

interface Template {
  name: string;
  description?: string;
  runtimes?: string[];
  network?: unknown;
  pool?: Record<string, number>;
  resources?: Record<string, number>;
}

/**
 * Whether this key may change templates (the admin scope). The API has no "who am I": an
 * administrator-only listing answers 200 to administrators and 403 to everyone else. The server
 * decides every write regardless; this only hides buttons that would be refused.
 */
function useIsAdmin(): boolean {
  const { data } = usePoll(() => api('GET', '/api/v1/admin/tenants').then(() => true, () => false), []);
  return data === true;
}

/** The template as JSON in a text area; Save replaces it (PUT), the server validating it. */
function Editor({ template, done }: { template: Template; done: () => void }) {
  const { name, ...rest } = template;
  const [text, setText] = useState(JSON.stringify(rest, null, 2));
  const [state, setState] = useState<{ ok: boolean; text: string }>();
  const [busy, setBusy] = useState(false);
  const save = async (e: Event): Promise<void> => {
    e.preventDefault();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      setState({ ok: false, text: `The template is not JSON: ${(err as Error).message}` });
      return;
    }
    setBusy(true);
    try {
      await api('PUT', `/api/v1/templates/${enc(name)}`, body);
      setState({ ok: true, text: `Saved ${name}` });
      done();
    } catch (err) {
      setState({ ok: false, text: errorText(err) });
    } finally {
      setBusy(false);
    }
  };
  const id = `tpl-edit-${name}`;
  return (
    <form onSubmit={(e) => void save(e)} aria-label={`Edit template ${name}`}>
      <label for={id}>Template {name} (JSON; pool sizes apply from the next keeper round, running sandboxes keep their resources)</label>
      <textarea id={id} rows={16} spellcheck={false} value={text} onInput={(e) => setText(e.currentTarget.value)} />
      <div class="row">
        <button type="submit" disabled={busy}>{busy ? 'Saving…' : 'Save'}</button>
      </div>
      {state && (state.ok ? <p role="status">{state.text}</p> : <p class="error" role="alert">{state.text}</p>)}
    </form>
  );
}

/** Templates: read by every key, edited by administrators. */
export function Templates() {
  const { data, error, reload } = usePoll(() => api<{ templates: Template[] }>('GET', '/api/v1/templates'), []);
  const admin = useIsAdmin();
  const [open, setOpen] = useState<string>();
  const [editing, setEditing] = useState<string>();
  return (
    <section aria-labelledby="tpl-h">
      <h1 id="tpl-h">Templates</h1>
      {error && <p class="error" role="alert">{error}</p>}
      <table>
        <thead><tr><th>Name</th><th>Description</th><th>Runtimes</th><th>Memory</th><th>Pool</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>
          {(data?.templates ?? []).map((t) => [
            <tr key={t.name}>
              <td>{t.name}</td>
              <td class="name">{t.description ?? ''}</td>
              <td>{(t.runtimes ?? []).join(', ')}</td>
              <td>{t.resources?.memoryMB ?? '–'} MB</td>
              <td>{t.pool ? Object.entries(t.pool).map(([k, v]) => `${k} ${v}`).join(', ') : '–'}</td>
              <td>
                <button aria-expanded={open === t.name} onClick={() => setOpen(open === t.name ? undefined : t.name)}>{open === t.name ? 'Hide' : 'Details'}</button>{' '}
                {admin && (
                  <button aria-expanded={editing === t.name} aria-label={`Edit ${t.name}`} onClick={() => setEditing(editing === t.name ? undefined : t.name)}>
                    {editing === t.name ? 'Close editor' : 'Edit'}
                  </button>
                )}
              </td>
            </tr>,
            open === t.name && (
              <tr key={`${t.name}-d`}>
                <td colSpan={6}><pre>{JSON.stringify(t, null, 2)}</pre></td>
              </tr>
            ),
            editing === t.name && (
              <tr key={`${t.name}-e`}>
                <td colSpan={6}><Editor template={t} done={reload} /></td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
      {!admin && <p class="hint">Changing a template needs an administrator key.</p>}
    </section>
  );
}
