/**
 * A minimal stand-in for `prom-client` in workerd, aliased at bundle time (infra/wrangler.jsonc `alias`,
 * test/workers/vitest.config.ts). prom-client's default metrics need node:cluster, v8, perf_hooks and /proc,
 * which workerd does not have. This keeps the API's metrics code unchanged: Counter, Gauge, Histogram and a
 * Registry rendering the Prometheus text format (per isolate; Workers Analytics/observability is the
 * fleet-wide view). collectDefaultMetrics is a no-op.
 */
type Labels = Record<string, string | number>;
const key = (l: Labels = {}) => JSON.stringify(Object.keys(l).sort().map((k) => [k, String(l[k])]));
const fmt = (l: Labels, extra: Labels = {}) => {
  const all = { ...l, ...extra };
  const ks = Object.keys(all);
  return ks.length ? `{${ks.map((k) => `${k}="${String(all[k]).replace(/["\\\n]/g, '_')}"`).join(',')}}` : '';
};

interface MetricLike {
  name: string;
  render(): Promise<string>;
}

export class Registry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  private readonly list: MetricLike[] = [];
  registerMetric(m: MetricLike): void {
    this.list.push(m);
  }
  async metrics(): Promise<string> {
    return (await Promise.all(this.list.map((m) => m.render()))).join('\n') + '\n';
  }
}

interface Cfg {
  name: string;
  help: string;
  labelNames?: readonly string[];
  registers?: Registry[];
  buckets?: number[];
  collect?: (this: Gauge) => void;
}

abstract class Base implements MetricLike {
  readonly name: string;
  protected readonly help: string;
  constructor(cfg: Cfg) {
    this.name = cfg.name;
    this.help = cfg.help;
    for (const r of cfg.registers ?? []) r.registerMetric(this);
  }
  abstract render(): Promise<string>;
}

export class Counter extends Base {
  private values = new Map<string, { labels: Labels; v: number }>();
  inc(a?: Labels | number, b?: number): void {
    const labels = typeof a === 'object' ? a : {};
    const by = typeof a === 'number' ? a : (b ?? 1);
    const k = key(labels);
    const e = this.values.get(k) ?? { labels, v: 0 };
    e.v += by;
    this.values.set(k, e);
  }
  async render(): Promise<string> {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const e of this.values.values()) lines.push(`${this.name}${fmt(e.labels)} ${e.v}`);
    return lines.join('\n');
  }
}

export class Gauge extends Base {
  private values = new Map<string, { labels: Labels; v: number }>();
  private readonly collectFn?: (this: Gauge) => void;
  constructor(cfg: Cfg) {
    super(cfg);
    this.collectFn = cfg.collect;
  }
  set(a: Labels | number, b?: number): void {
    const labels = typeof a === 'object' ? a : {};
    const v = typeof a === 'number' ? a : (b ?? 0);
    this.values.set(key(labels), { labels, v });
  }
  inc(a?: Labels | number, b?: number): void {
    const labels = typeof a === 'object' ? a : {};
    const e = this.values.get(key(labels)) ?? { labels, v: 0 };
    e.v += typeof a === 'number' ? a : (b ?? 1);
    this.values.set(key(labels), e);
  }
  dec(a?: Labels | number, b?: number): void {
    this.inc(typeof a === 'object' ? a : {}, -(typeof a === 'number' ? a : (b ?? 1)));
  }
  reset(): void {
    this.values.clear();
  }
  async render(): Promise<string> {
    this.collectFn?.call(this);
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`];
    for (const e of this.values.values()) lines.push(`${this.name}${fmt(e.labels)} ${e.v}`);
    return lines.join('\n');
  }
}

export class Histogram extends Base {
  private readonly buckets: number[];
  private values = new Map<string, { labels: Labels; counts: number[]; sum: number; n: number }>();
  constructor(cfg: Cfg) {
    super(cfg);
    this.buckets = cfg.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  }
  observe(a: Labels | number, b?: number): void {
    const labels = typeof a === 'object' ? a : {};
    const v = typeof a === 'number' ? a : (b ?? 0);
    const k = key(labels);
    const e = this.values.get(k) ?? { labels, counts: this.buckets.map(() => 0), sum: 0, n: 0 };
    this.buckets.forEach((le, i) => {
      if (v <= le) e.counts[i]++;
    });
    e.sum += v;
    e.n++;
    this.values.set(k, e);
  }
  async render(): Promise<string> {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const e of this.values.values()) {
      this.buckets.forEach((le, i) => lines.push(`${this.name}_bucket${fmt(e.labels, { le })} ${e.counts[i]}`));
      lines.push(`${this.name}_bucket${fmt(e.labels, { le: '+Inf' })} ${e.n}`, `${this.name}_sum${fmt(e.labels)} ${e.sum}`, `${this.name}_count${fmt(e.labels)} ${e.n}`);
    }
    return lines.join('\n');
  }
}

export function collectDefaultMetrics(_opts?: unknown): void {
  /* no process metrics in workerd */
}

export default { Registry, Counter, Gauge, Histogram, collectDefaultMetrics };
