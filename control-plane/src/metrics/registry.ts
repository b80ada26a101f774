/**
 * A tiny Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format (version 0.0.4). Enough for /metrics without a dependency.
 */

type Labels = Record<string, string>;

const escape = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Labels): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${escape(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};
/**
 * A series' identity, independent of label order. Called on every observed execution, so it
 * avoids localeCompare and JSON (which cost more than the rest of the metrics together).
 */
const keyOf = (l: Labels): string => {
  const names = Object.keys(l);
  if (names.length > 1) names.sort();
  let k = '';
  for (const n of names) k += `${n}\u0000${l[n] as string}\u0001`;
  return k;
};
const num = (n: number): string => (Number.isFinite(n) ? String(n) : n > 0 ? '+Inf' : '-Inf');

interface Metric {
  render(): string[];
}

abstract class Base implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly type: string,
  ) {}
  protected header(): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
  }
  abstract render(): string[];
}

export class Counter extends Base {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }
  inc(labels: Labels = {}, by = 1): void {
    const k = keyOf(labels);
    const v = this.values.get(k) ?? { labels, value: 0 };
    v.value += by;
    this.values.set(k, v);
  }
  render(): string[] {
    return [...this.header(), ...[...this.values.values()].map((v) => `${this.name}${labelText(v.labels)} ${num(v.value)}`)];
  }
}

/** A gauge whose samples are set in full by a collector right before each scrape. */
export class Gauge extends Base {
  private values = new Map<string, { labels: Labels; value: number }>();
  constructor(name: string, help: string) {
    super(name, help, 'gauge');
  }
  set(labels: Labels, value: number): void {
    this.values.set(keyOf(labels), { labels, value });
  }
  reset(): void {
    this.values = new Map();
  }
  render(): string[] {
    return [...this.header(), ...[...this.values.values()].map((v) => `${this.name}${labelText(v.labels)} ${num(v.value)}`)];
  }
}

export class Histogram extends Base {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    name: string,
    help: string,
    private readonly buckets: number[],
  ) {
    super(name, help, 'histogram');
  }
  observe(labels: Labels, value: number): void {
    const k = keyOf(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= (this.buckets[i] as number)) s.counts[i] = (s.counts[i] as number) + 1;
    s.sum += value;
    s.count++;
  }
  render(): string[] {
    const out = this.header();
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelText({ ...s.labels, le: num(b) })} ${s.counts[i] ?? 0}`));
      out.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      out.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];
  private readonly collectors: Array<() => Promise<void>> = [];

  register<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }

  /** Runs before each scrape to set gauges from their source (Redis). */
  collect(fn: () => Promise<void>): void {
    this.collectors.push(fn);
  }

  async render(): Promise<string> {
    await Promise.all(this.collectors.map((c) => c()));
    return `${this.metrics.flatMap((m) => m.render()).join('\n')}\n`;
  }
}
