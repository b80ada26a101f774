import { api, ms } from '../api.js';
import { usePoll } from '../hooks.js';

interface Histogram {
  count: number;
  sumMs: number;
  buckets: Array<{ leMs: number | null; count: number }>;
}
interface Pool {
  template: string;
  sandboxes: { idleWarm: number; idleHot: number; busy: number; booting: number; reaping: number };
  executors: number;
  starts: { hot: Histogram; warm: Histogram; cold: Histogram };
  executorDetail?: Array<{ id: string; ok: boolean; sandboxes?: number; maxSandboxes?: number; uptimeMs?: number; error?: string }>;
}

/** A start-latency histogram as bars (a table underneath, for screen readers and keyboard users). */
function Bars({ type, h }: { type: string; h: Histogram }) {
  const max = Math.max(1, ...h.buckets.map((b) => b.count));
  return (
    <figure class="hist">
      <figcaption>
        {type}: {h.count} starts{h.count ? `, mean ${ms(h.sumMs / h.count)}` : ''}
      </figcaption>
      <table>
        <tbody>
          {h.buckets.map((b, i) => (
            <tr key={i}>
              <th scope="row">{b.leMs === null ? '> last' : `≤ ${ms(b.leMs)}`}</th>
              <td>
                <span class={`bar ${type}`} style={{ width: `${(b.count / max) * 85}%` }} />
                <span class="count">{b.count}</span>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </figure>
  );
}

export function Pools() {
  const { data, error } = usePoll(() => api<{ pools: Pool[] }>('GET', '/api/v1/pools'), [], 2000);
  return (
    <section aria-labelledby="pools-h">
      <h1 id="pools-h">Pools and executors</h1>
      <p class="hint">Live: refreshed every 2 s.</p>
      {error && <p class="error" role="alert">{error}</p>}
      {(data?.pools ?? []).map((p) => (
        <article class="card" key={p.template} aria-labelledby={`pool-${p.template}`} data-template={p.template}>
          <h2 id={`pool-${p.template}`}>{p.template}</h2>
          <dl class="stats">
            <div><dt>Idle warm</dt><dd data-testid="idle-warm">{p.sandboxes.idleWarm}</dd></div>
            <div><dt>Idle hot</dt><dd>{p.sandboxes.idleHot}</dd></div>
            <div><dt>Busy</dt><dd data-testid="busy">{p.sandboxes.busy}</dd></div>
            <div><dt>Booting</dt><dd>{p.sandboxes.booting}</dd></div>
            <div><dt>Executors</dt><dd>{p.executors}</dd></div>
            <div><dt>Starts</dt><dd data-testid="starts">{p.starts.hot.count + p.starts.warm.count + p.starts.cold.count}</dd></div>
          </dl>
          <div class="hists">
            {(['hot', 'warm', 'cold'] as const).map((t) => <Bars key={t} type={t} h={p.starts[t]} />)}
          </div>
          {p.executorDetail && (
            <table aria-label={`Executors of ${p.template}`}>
              <thead><tr><th>Executor</th><th>State</th><th>Sandboxes</th><th>Up</th></tr></thead>
              <tbody>
                {p.executorDetail.map((e) => (
                  <tr key={e.id}>
                    <td><code>{e.id}</code></td>
                    <td>{e.ok ? 'ok' : `unreachable: ${e.error ?? ''}`}</td>
                    <td>{e.sandboxes ?? '–'} / {e.maxSandboxes ?? '–'}</td>
                    <td>{e.uptimeMs === undefined ? '–' : `${Math.round(e.uptimeMs / 60_000)} min`}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </article>
      ))}
    </section>
  );
}
