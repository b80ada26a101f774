import { useEffect, useRef, useState } from 'preact/hooks';
import { api, apiRaw, bytes, enc, errorText } from '../api.js';
import { usePoll } from '../hooks.js';

interface Session {
  id: string;
  template: string;
  status: string;
  hibernated?: boolean;
  createdAt: string;
  expiresAt: string;
  lastActivityAt: string;
}

export function Sessions() {
  const { data, error, reload } = usePoll(() => api<{ sessions: Session[] }>('GET', '/api/v1/sessions'), [], 5000);
  const templates = usePoll(() => api<{ templates: Array<{ name: string }> }>('GET', '/api/v1/templates'), []);
  const [template, setTemplate] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string>();
  const create = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setProblem(undefined);
    try {
      const s = await api<Session>('POST', '/api/v1/sessions', { template: template || templates.data?.templates[0]?.name || 'nodejs' });
      location.hash = `#/sessions/${enc(s.id)}`;
    } catch (err) {
      setProblem(errorText(err));
    } finally {
      setBusy(false);
      reload();
    }
  };
  return (
    <section aria-labelledby="sessions-h">
      <h1 id="sessions-h">Sessions</h1>
      <form class="row" onSubmit={(e) => void create(e)}>
        <label for="tpl">Template</label>
        <select id="tpl" value={template} onChange={(e) => setTemplate(e.currentTarget.value)}>
          {(templates.data?.templates ?? []).map((t) => (
            <option key={t.name} value={t.name}>
              {t.name}
            </option>
          ))}
        </select>
        <button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create session'}
        </button>
      </form>
      {problem && <p class="error" role="alert">{problem}</p>}
      {error && <p class="error" role="alert">{error}</p>}
      <table>
        <thead>
          <tr><th>Id</th><th>Template</th><th>Status</th><th>Created</th><th>Expires</th></tr>
        </thead>
        <tbody>
          {(data?.sessions ?? []).map((s) => (
            <tr key={s.id}>
              <td><a href={`#/sessions/${enc(s.id)}`}>{s.id}</a></td>
              <td>{s.template}</td>
              <td>{s.status}</td>
              <td>{new Date(s.createdAt).toLocaleString()}</td>
              <td>{new Date(s.expiresAt).toLocaleString()}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.sessions.length === 0 && <p>No sessions yet.</p>}
    </section>
  );
}

interface Usage {
  source: string;
  cpuUsageUs?: number;
  cpuLimitCores?: number;
  memoryBytes?: number;
  memoryLimitBytes?: number;
  tasks?: number;
  sampledAtMs: number;
}

/** Live CPU (from two samples' difference) and memory of the session's cgroup. */
function UsagePanel({ id }: { id: string }) {
  const last = useRef<Usage>();
  const [cpu, setCpu] = useState<number>();
  const { data, error } = usePoll(async () => {
    const u = await api<Usage>('GET', `/api/v1/sessions/${enc(id)}/metrics`);
    const prev = last.current;
    if (prev?.cpuUsageUs !== undefined && u.cpuUsageUs !== undefined && u.sampledAtMs > prev.sampledAtMs) {
      setCpu(((u.cpuUsageUs - prev.cpuUsageUs) / 1000 / (u.sampledAtMs - prev.sampledAtMs)) * 100);
    }
    last.current = u;
    return u;
  }, [id], 2000);
  if (error) return <p class="error">{error}</p>;
  if (!data) return <p>Loading usage…</p>;
  if (data.source === 'none') return <p>This executor has no cgroups: no usage figures.</p>;
  const memPct = data.memoryLimitBytes ? ((data.memoryBytes ?? 0) / data.memoryLimitBytes) * 100 : 0;
  const cpuMax = (data.cpuLimitCores ?? 1) * 100;
  return (
    <dl class="usage" aria-live="polite">
      <div>
        <dt>CPU</dt>
        <dd>
          <meter min={0} max={cpuMax} value={cpu ?? 0} aria-label="CPU use" /> {cpu === undefined ? '…' : `${cpu.toFixed(1)} %`} of {cpuMax.toFixed(0)} %
        </dd>
      </div>
      <div>
        <dt>Memory</dt>
        <dd>
          <meter min={0} max={100} value={memPct} aria-label="Memory use" /> {bytes(data.memoryBytes)} of {bytes(data.memoryLimitBytes)}
        </dd>
      </div>
      <div>
        <dt>Tasks</dt>
        <dd>{data.tasks ?? '–'}</dd>
      </div>
    </dl>
  );
}

interface FileInfo {
  path: string;
  name: string;
  type: string;
  size: number;
  modifiedAt: string;
}

function join(dir: string, name: string): string {
  return dir === '.' || dir === '' ? name : `${dir.replace(/\/$/, '')}/${name}`;
}

function Files({ id }: { id: string }) {
  const [dir, setDir] = useState('.');
  const [problem, setProblem] = useState<string>();
  const { data, error, reload } = usePoll(() => api<{ entries: FileInfo[] }>('GET', `/api/v1/sessions/${enc(id)}/files/list?path=${enc(dir)}`), [id, dir]);
  const upload = async (e: Event): Promise<void> => {
    const input = e.currentTarget as HTMLInputElement;
    setProblem(undefined);
    for (const file of Array.from(input.files ?? [])) {
      try {
        await apiRaw('PUT', `/api/v1/sessions/${enc(id)}/files?path=${enc(join(dir, file.name))}`, file, 'application/octet-stream');
      } catch (err) {
        setProblem(errorText(err));
      }
    }
    input.value = '';
    reload();
  };
  const download = async (f: FileInfo): Promise<void> => {
    try {
      const res = await apiRaw('GET', `/api/v1/sessions/${enc(id)}/files?path=${enc(join(dir, f.name))}`);
      // Always octet-stream: a sandbox's file must never open as a page of this origin.
      const url = URL.createObjectURL(new Blob([await res.arrayBuffer()], { type: 'application/octet-stream' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = f.name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setProblem(errorText(err));
    }
  };
  const up = dir === '.' ? undefined : dir.includes('/') ? dir.slice(0, dir.lastIndexOf('/')) : '.';
  return (
    <div>
      <div class="row">
        <span>
          Directory: <code>/workspace{dir === '.' ? '' : `/${dir}`}</code>
        </span>
        {up !== undefined && <button onClick={() => setDir(up)}>Up</button>}
        <label class="button" for="upload">Upload files</label>
        <input id="upload" class="visually-hidden" type="file" multiple onChange={(e) => void upload(e)} />
        <button onClick={reload}>Refresh</button>
      </div>
      {(problem ?? error) && <p class="error" role="alert">{problem ?? error}</p>}
      <table aria-label="Files">
        <thead>
          <tr><th>Name</th><th>Type</th><th>Size</th><th>Modified</th><th><span class="visually-hidden">Actions</span></th></tr>
        </thead>
        <tbody>
          {(data?.entries ?? []).map((f) => (
            <tr key={f.name}>
              <td class="name">{f.type === 'dir' ? <button class="link" onClick={() => setDir(join(dir, f.name))}>{f.name}/</button> : f.name}</td>
              <td>{f.type}</td>
              <td>{bytes(f.size)}</td>
              <td>{new Date(f.modifiedAt).toLocaleString()}</td>
              <td>{f.type === 'file' && <button onClick={() => void download(f)} aria-label={`Download ${f.name}`}>Download</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

interface Proc {
  pid: number;
  tag?: string;
  command: string;
  args: string[];
  running: boolean;
  exitCode: number | null;
  startedAt: string;
}

function Processes({ id }: { id: string }) {
  const { data, error, reload } = usePoll(() => api<{ processes: Proc[] }>('GET', `/api/v1/sessions/${enc(id)}/processes`), [id], 5000);
  const kill = async (pid: number): Promise<void> => {
    await api('POST', `/api/v1/sessions/${enc(id)}/processes/${pid}/signal`, { signal: 'SIGTERM' }).catch(() => undefined);
    reload();
  };
  return (
    <div>
      {error && <p class="error">{error}</p>}
      <table aria-label="Processes">
        <thead>
          <tr><th>Pid</th><th>Command</th><th>State</th><th>Started</th><th><span class="visually-hidden">Actions</span></th></tr>
        </thead>
        <tbody>
          {(data?.processes ?? []).map((p) => (
            <tr key={p.pid}>
              <td>{p.pid}</td>
              <td class="name">{[p.command, ...p.args].join(' ')}</td>
              <td>{p.running ? 'running' : `exited ${p.exitCode ?? ''}`}</td>
              <td>{new Date(p.startedAt).toLocaleTimeString()}</td>
              <td>{p.running && <button onClick={() => void kill(p.pid)}>Stop</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {data && data.processes.length === 0 && <p>No processes started through the API (terminals are not listed).</p>}
    </div>
  );
}

/** xterm.js is loaded only when a terminal opens, so it is not part of the first load. */
function TerminalView({ id }: { id: string }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState('connecting…');
  useEffect(() => {
    let close: (() => void) | undefined;
    let gone = false;
    import('../terminal.js')
      .then(({ openTerminal }) => openTerminal(host.current as HTMLElement, id, setStatus))
      .then((c) => (gone ? c() : (close = c)))
      .catch((err: unknown) => setStatus(errorText(err)));
    return () => {
      gone = true;
      close?.();
    };
  }, [id]);
  return (
    <div>
      <p class="hint" aria-live="polite">Terminal: {status}</p>
      <div class="terminal" ref={host} />
    </div>
  );
}

export function SessionPage({ id }: { id: string }) {
  const [tab, setTab] = useState<'terminal' | 'files' | 'processes'>('terminal');
  const { data, error, reload } = usePoll(() => api<Session>('GET', `/api/v1/sessions/${enc(id)}`), [id], 10_000);
  const [busy, setBusy] = useState<string>();
  const [problem, setProblem] = useState<string>();
  /** Pause freezes the sandbox's processes (terminal and files stay); resume thaws them, or restores a hibernated workspace. */
  const transition = async (to: 'pause' | 'resume'): Promise<void> => {
    setBusy(to === 'pause' ? 'Pausing…' : 'Resuming…');
    setProblem(undefined);
    try {
      await api('POST', `/api/v1/sessions/${enc(id)}/${to}`);
    } catch (err) {
      setProblem(errorText(err));
    } finally {
      setBusy(undefined);
      reload();
    }
  };
  const remove = async (): Promise<void> => {
    if (!confirm(`Delete session ${id}? Its processes and files are gone for good.`)) return;
    await api('DELETE', `/api/v1/sessions/${enc(id)}`);
    location.hash = '#/sessions';
  };
  return (
    <section aria-labelledby="session-h">
      <p><a href="#/sessions">← Sessions</a></p>
      <h1 id="session-h">Session <code>{id}</code></h1>
      {(problem ?? error) && <p class="error" role="alert">{problem ?? error}</p>}
      {data && (
        <p>
          {data.template} · <span data-testid="session-status">{data.hibernated ? 'hibernated' : data.status}</span> · expires {new Date(data.expiresAt).toLocaleString()}{' '}
          {data.status === 'paused' ? (
            <button disabled={busy !== undefined} onClick={() => void transition('resume')}>{busy ?? 'Resume'}</button>
          ) : (
            data.status === 'running' && <button disabled={busy !== undefined} onClick={() => void transition('pause')}>{busy ?? 'Pause'}</button>
          )}{' '}
          <button class="danger" onClick={() => void remove()}>Delete session</button>
        </p>
      )}
      <UsagePanel id={id} />
      <div role="tablist" aria-label="Session views" class="tabs">
        {(['terminal', 'files', 'processes'] as const).map((t) => (
          <button key={t} role="tab" aria-selected={tab === t} onClick={() => setTab(t)}>
            {t[0]?.toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      <div role="tabpanel">
        {tab === 'terminal' && <TerminalView id={id} />}
        {tab === 'files' && <Files id={id} />}
        {tab === 'processes' && <Processes id={id} />}
      </div>
    </section>
  );
}
