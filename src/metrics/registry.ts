// The registry behind MetricsRegistry: families by full name, each with its series by rendered
// label set. Counters and gauges are objects with a plain numeric field and histograms have typed
// arrays, all made once at registration; render() builds the exposition text only when scraped.

import { Histogram } from "./histogram.ts";
import { renderLabels, withLabel, type Labels } from "./labels.ts";
import type { Counter, FamilyInfo, MetricType, MetricsRegistry } from "./types.ts";

type Series = Counter | Histogram | { readonly labels: string; readonly read: () => number };

interface Family {
  readonly type: MetricType;
  readonly help: string;
  /** The name as registered (without the registry prefix): the key snapshot() uses. */
  readonly short: string;
  readonly series: Map<string, Series>;
  /** gaugeFamily: series made at scrape time. */
  dynamic?: () => Iterable<readonly [Labels, number]>;
}

/** Families shared by a registry and its unprefixed view. */
type Families = Map<string, Family>;

export class Registry implements MetricsRegistry {
  constructor(
    private readonly prefix: string,
    private readonly families: Families = new Map(),
  ) {}

  counter(name: string, help: string, labels?: Labels): Counter {
    return this.#cell("counter", name, help, labels);
  }

  gauge(name: string, help: string, labels?: Labels): Counter {
    return this.#cell("gauge", name, help, labels);
  }

  gaugeFn(name: string, help: string, read: () => number, labels?: Labels): void {
    this.#fn("gauge", name, help, read, labels);
  }

  gaugeFamily(name: string, help: string, read: () => Iterable<readonly [Labels, number]>): void {
    this.#family("gauge", name, help).dynamic = read;
  }

  counterFn(name: string, help: string, read: () => number, labels?: Labels): void {
    this.#fn("counter", name, help, read, labels);
  }

  histogram(name: string, help: string, buckets: readonly number[], labels?: Labels): Histogram {
    const family = this.#family("histogram", name, help);
    const text = renderLabels(labels);
    const existing = family.series.get(text);
    if (existing instanceof Histogram) return existing;
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`histogram ${name}: buckets must increase`);
    }
    const h = new Histogram(name, help, text, buckets);
    family.series.set(text, h);
    return h;
  }

  remove(name: string, labels?: Labels): void {
    const full = this.prefix + name;
    const family = this.families.get(full);
    if (!family) return;
    family.series.delete(renderLabels(labels));
    if (family.series.size === 0 && family.dynamic === undefined) this.families.delete(full);
  }

  unprefixed(): MetricsRegistry {
    return new Registry("", this.families);
  }

  families_(): FamilyInfo[] {
    return [...this.families].map(([name, f]) => ({ name, type: f.type, help: f.help, series: f.series.size }));
  }

  render(): string {
    const out: string[] = [];
    for (const [name, family] of [...this.families].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      out.push(`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.type}`);
      for (const s of family.series.values()) {
        if (s instanceof Histogram) renderHistogram(out, name, s);
        else out.push(`${name}${s.labels} ${formatValue("read" in s ? safeRead(s.read) : s.value)}`);
      }
      for (const [labels, value] of dynamicSeries(family)) out.push(`${name}${labels} ${formatValue(value)}`);
    }
    return out.join("\n") + "\n";
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const family of this.families.values()) {
      for (const s of family.series.values()) {
        if (s instanceof Histogram) {
          out[`${family.short}_count${s.labels}`] = s.count;
          out[`${family.short}_sum${s.labels}`] = s.sum;
        } else {
          out[family.short + s.labels] = "read" in s ? safeRead(s.read) : s.value;
        }
      }
      for (const [labels, value] of dynamicSeries(family)) out[family.short + labels] = value;
    }
    return out;
  }

  sum(name: string): number {
    const family = this.families.get(this.prefix + name);
    if (!family) return 0;
    let total = 0;
    for (const s of family.series.values()) {
      total += s instanceof Histogram ? s.count : "read" in s ? safeRead(s.read) : s.value;
    }
    for (const [, value] of dynamicSeries(family)) total += value;
    return total;
  }

  #family(type: MetricType, name: string, help: string): Family {
    const full = this.prefix + name;
    let family = this.families.get(full);
    if (!family) {
      if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(full)) throw new Error(`invalid metric name ${JSON.stringify(full)}`);
      family = { type, help, short: name, series: new Map() };
      this.families.set(full, family);
    } else if (family.type !== type) {
      throw new Error(`metric ${full} registered as ${family.type} and ${type}`);
    }
    return family;
  }

  #cell(type: "counter" | "gauge", name: string, help: string, labels?: Labels): Counter {
    const family = this.#family(type, name, help);
    const text = renderLabels(labels);
    const existing = family.series.get(text);
    if (existing && !("read" in existing) && !(existing instanceof Histogram)) return existing;
    const cell: Counter = { name, help, labels: text, value: 0 };
    family.series.set(text, cell);
    return cell;
  }

  #fn(type: "counter" | "gauge", name: string, help: string, read: () => number, labels?: Labels): void {
    const family = this.#family(type, name, help);
    const text = renderLabels(labels);
    family.series.set(text, { labels: text, read });
  }
}

/** A gaugeFamily's series now, labels rendered; a failing reader loses only its own series. */
function dynamicSeries(family: Family): [string, number][] {
  if (family.dynamic === undefined) return [];
  const out: [string, number][] = [];
  try {
    for (const [labels, value] of family.dynamic()) out.push([renderLabels(labels), value]);
  } catch {
    // this scrape goes without them, not without the page
  }
  return out;
}

function renderHistogram(out: string[], name: string, h: Histogram): void {
  let cumulative = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    cumulative += h.buckets[i]!;
    out.push(`${name}_bucket${withLabel(h.labels, "le", formatValue(h.bounds[i]!))} ${cumulative}`);
  }
  cumulative += h.buckets[h.bounds.length]!;
  out.push(`${name}_bucket${withLabel(h.labels, "le", "+Inf")} ${cumulative}`);
  out.push(`${name}_sum${h.labels} ${formatValue(h.sum)}`);
  out.push(`${name}_count${h.labels} ${h.count}`);
}

/** Prometheus text float: NaN and infinities spelled its way. */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function safeRead(read: () => number): number {
  try {
    return read();
  } catch {
    return Number.NaN;
  }
}
