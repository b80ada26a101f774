import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, apiKey, errorText, setApiKey, setLogoutHandler } from './api.js';
import { Executions } from './pages/executions.js';
import { FunctionPage, Functions } from './pages/functions.js';
import { Pools } from './pages/pools.js';
import { SessionPage, Sessions } from './pages/sessions.js';
import { Templates } from './pages/templates.js';
import './style.css';

const PAGES = [
  ['sessions', 'Sessions'],
  ['functions', 'Functions'],
  ['executions', 'Executions'],
  ['pools', 'Pools'],
  ['templates', 'Templates'],
] as const;

/** Hash routes (#/sessions/ID): the server serves one page, and ids never reach its logs. */
function useRoute(): string[] {
  const parse = (): string[] => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = (): void => setRoute(parse());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Login({ onIn }: { onIn: () => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setApiKey(key.trim());
    try {
      // Any key with the read scope can list templates: a cheap check that the key is known.
      await api('GET', '/api/v1/templates');
      onIn();
    } catch (err) {
      setApiKey(null);
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <h1>Kiln</h1>
      <form onSubmit={(e) => void submit(e)} aria-label="Log in">
        <label for="key">API key</label>
        <input id="key" name="key" type="password" autocomplete="off" required value={key} onInput={(e) => setKey(e.currentTarget.value)} autofocus />
        <button type="submit" disabled={busy}>
          Log in
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <p class="hint">The key stays in this tab (sessionStorage) and goes only to this Kiln, in a header.</p>
      </form>
    </main>
  );
}

function App() {
  const [authed, setAuthed] = useState(apiKey() !== null);
  const route = useRoute();
  useEffect(() => setLogoutHandler(() => setAuthed(false)), []);
  if (!authed) return <Login onIn={() => setAuthed(true)} />;
  const [page = 'sessions', id] = route;
  const body =
    page === 'sessions' && id ? <SessionPage id={id} /> :
    page === 'functions' && id ? <FunctionPage name={id} /> :
    page === 'functions' ? <Functions /> :
    page === 'executions' ? <Executions /> :
    page === 'pools' ? <Pools /> :
    page === 'templates' ? <Templates /> :
    <Sessions />;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header>
        <span class="brand">Kiln</span>
        <nav aria-label="Sections">
          {PAGES.map(([p, label]) => (
            <a key={p} href={`#/${p}`} aria-current={page === p ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <button class="quiet" onClick={() => { setApiKey(null); setAuthed(false); }}>
          Log out
        </button>
      </header>
      <main id="main" tabIndex={-1}>{body}</main>
    </>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
