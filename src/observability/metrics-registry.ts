// A small metrics registry that renders the Prometheus text exposition format (version 0.0.4):
// counters, gauges and histograms with labels, and counters/gauges read from a source at scrape time.
//
// Why not prom-client (which the verifier uses)? The edge app (src/app.ts) is the same code on Node and on
// Cloudflare Workers, and the Worker runs without nodejs_compat: prom-client imports node:cluster, v8,
// perf_hooks and friends at load time, so it cannot be in the Worker bundle. Injecting it from src/node.ts
// only would leave Workers without metrics and give the app two code paths; this file is plain
// TypeScript (no imports), so one /metrics works on both runtimes.

export type LabelValues = Readonly<Record<string, string | number>>;

/** The Content-Type of the text exposition format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A sample value as the format writes it: +Inf, -Inf, NaN, or the shortest round-tripping decimal. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeLabel = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i])}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

interface MetricOptions<M> {
  name: string;
  help: string;
  labelNames?: readonly string[];
  /** Called before each render: sets the values from where they are kept (like prom-client's collect). */
  collect?: (metric: M) => void;
}

abstract class Metric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  abstract readonly type: "counter" | "gauge" | "histogram";

  constructor(o: MetricOptions<never>, reserved: readonly string[] = []) {
    if (!METRIC_NAME.test(o.name)) throw new RangeError(`invalid metric name '${o.name}'`);
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames ?? [];
    for (const l of this.labelNames) if (!LABEL_NAME.test(l) || l.startsWith("__") || reserved.includes(l)) throw new RangeError(`${o.name}: invalid label name '${l}'`);
    if (new Set(this.labelNames).size !== this.labelNames.length) throw new RangeError(`${o.name}: duplicate label names`);
  }

  /** Label values in declared order; every declared label must be given, and no other. */
  protected values(labels: LabelValues = {}): string[] {
    const keys = Object.keys(labels);
    if (keys.length !== this.labelNames.length || keys.some((k) => !this.labelNames.includes(k))) throw new RangeError(`${this.name}: labels must be exactly {${this.labelNames.join(", ")}}, got {${keys.join(", ")}}`);
    return this.labelNames.map((n) => String(labels[n]));
  }

  abstract collect(): void;
  abstract samples(): string[];

  render(): string {
    this.collect();
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()].join("\n");
  }
}

/** Counter or gauge: one number per label set. */
abstract class Scalar<M> extends Metric {
  protected readonly series = new Map<string, { labels: string[]; value: number }>();

  constructor(private readonly o: MetricOptions<M>) {
    super(o as MetricOptions<never>);
    // An unlabelled metric is always exposed, at 0 until something happens.
    if (this.labelNames.length === 0) this.series.set("[]", { labels: [], value: 0 });
  }

  protected slot(labels?: LabelValues) {
    const values = this.values(labels);
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: values, value: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  /** The current value of one label set (0 if never touched). */
  get(labels?: LabelValues): number {
    return this.series.get(JSON.stringify(this.values(labels)))?.value ?? 0;
  }

  /** Forget every labelled series (unlabelled: back to 0). */
  reset(): void {
    for (const [k, s] of this.series)
      if (s.labels.length) this.series.delete(k);
      else s.value = 0;
  }

  collect(): void {
    this.o.collect?.(this as unknown as M);
  }

  samples(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${labelText(this.labelNames, s.labels)} ${formatValue(s.value)}`);
  }
}

export class Counter extends Scalar<Counter> {
  readonly type = "counter";

  /** Adds `by` (≥ 0) to a label set; without `by`, 1. */
  inc(labels?: LabelValues, by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) throw new RangeError(`${this.name}: a counter only goes up (got ${by})`);
    this.slot(labels).value += by;
  }
}

export class Gauge extends Scalar<Gauge> {
  readonly type = "gauge";

  set(labels: LabelValues | undefined, value: number): void {
    this.slot(labels).value = value;
  }

  inc(labels?: LabelValues, by = 1): void {
    this.slot(labels).value += by;
  }

  dec(labels?: LabelValues, by = 1): void {
    this.slot(labels).value -= by;
  }
}

export class Histogram extends Metric {
  readonly type = "histogram";
  readonly buckets: readonly number[];
  private readonly series = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();

  constructor(o: Omit<MetricOptions<never>, "collect"> & { buckets: readonly number[] }) {
    super(o, ["le"]);
    if (!o.buckets.length || o.buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= o.buckets[i - 1]))) throw new RangeError(`${o.name}: buckets must be finite and strictly increasing`);
    this.buckets = [...o.buckets];
    if (this.labelNames.length === 0) this.slot();
  }

  private slot(labels?: LabelValues) {
    const values = this.values(labels);
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: values, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  observe(labels: LabelValues | undefined, value: number): void {
    if (Number.isNaN(value)) throw new RangeError(`${this.name}: cannot observe NaN`);
    const s = this.slot(labels);
    // Per-bucket counts here; the exposition's cumulative counts are summed at render time.
    const i = this.buckets.findIndex((b) => value <= b);
    if (i >= 0) s.counts[i]++;
    s.sum += value;
    s.count++;
  }

  collect(): void {}

  samples(): string[] {
    const out: string[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (const [i, b] of this.buckets.entries()) {
        cumulative += s.counts[i];
        out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", formatValue(b)])} ${cumulative}`);
      }
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ["le", "+Inf"])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
    return out;
  }
}

export class Registry {
  private readonly metrics = new Map<string, Metric>();

  private add<M extends Metric>(m: M): M {
    if (this.metrics.has(m.name)) throw new RangeError(`metric '${m.name}' is already registered`);
    this.metrics.set(m.name, m);
    return m;
  }

  counter(o: MetricOptions<Counter>): Counter {
    return this.add(new Counter(o));
  }

  gauge(o: MetricOptions<Gauge>): Gauge {
    return this.add(new Gauge(o));
  }

  histogram(o: Omit<MetricOptions<never>, "collect"> & { buckets: readonly number[] }): Histogram {
    return this.add(new Histogram(o));
  }

  /** Every metric in registration order, in the text exposition format (ends with a newline). */
  render(): string {
    return [...this.metrics.values()].map((m) => `${m.render()}\n`).join("");
  }
}
