// Counters and gauges the hot path bumps without allocating: each is an object with a plain
// numeric field, created once at start-up (`c.value++` on the hot path). The registry renders
// Prometheus text for the admin endpoint. Every module may import this; it imports nothing.

export interface Counter {
  readonly name: string;
  readonly help: string;
  readonly labels: string;
  value: number;
}

export interface MetricsRegistry {
  /** Get or create a counter. Call at start-up, never per packet. */
  counter(name: string, help: string, labels?: Record<string, string>): Counter;
  /** Get or create a gauge (same shape; set `value` directly). */
  gauge(name: string, help: string, labels?: Record<string, string>): Counter;
  /** A gauge read from a function at scrape time. */
  gaugeFn(name: string, help: string, read: () => number, labels?: Record<string, string>): void;
  /** Prometheus text exposition format 0.0.4. */
  render(): string;
  /** name{labels} -> value, for tests and `edgemesh status`. */
  snapshot(): Record<string, number>;
}

export function createMetrics(prefix = "edgemesh_"): MetricsRegistry {
  return new Registry(prefix);
}

interface Family {
  type: "counter" | "gauge";
  help: string;
  series: Map<string, Counter | { labels: string; read: () => number }>;
}

class Registry implements MetricsRegistry {
  #families = new Map<string, Family>();
  constructor(private readonly prefix: string) {}

  counter(name: string, help: string, labels?: Record<string, string>): Counter {
    return this.#get("counter", name, help, labels);
  }

  gauge(name: string, help: string, labels?: Record<string, string>): Counter {
    return this.#get("gauge", name, help, labels);
  }

  gaugeFn(name: string, help: string, read: () => number, labels?: Record<string, string>): void {
    const family = this.#family("gauge", name, help);
    const text = renderLabels(labels);
    family.series.set(text, { labels: text, read });
  }

  render(): string {
    const out: string[] = [];
    for (const [name, family] of [...this.#families].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      const full = this.prefix + name;
      out.push(`# HELP ${full} ${family.help}`, `# TYPE ${full} ${family.type}`);
      for (const series of family.series.values()) {
        const value = "read" in series ? safeRead(series.read) : series.value;
        out.push(`${full}${series.labels} ${value}`);
      }
    }
    return out.join("\n") + "\n";
  }

  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, family] of this.#families) {
      for (const series of family.series.values()) {
        out[name + series.labels] = "read" in series ? safeRead(series.read) : series.value;
      }
    }
    return out;
  }

  #family(type: Family["type"], name: string, help: string): Family {
    let family = this.#families.get(name);
    if (!family) {
      family = { type, help, series: new Map() };
      this.#families.set(name, family);
    } else if (family.type !== type) {
      throw new Error(`metric ${name} registered as ${family.type} and ${type}`);
    }
    return family;
  }

  #get(type: Family["type"], name: string, help: string, labels?: Record<string, string>): Counter {
    const family = this.#family(type, name, help);
    const text = renderLabels(labels);
    const existing = family.series.get(text);
    if (existing && !("read" in existing)) return existing;
    const counter: Counter = { name, help, labels: text, value: 0 };
    family.series.set(text, counter);
    return counter;
  }
}

function renderLabels(labels?: Record<string, string>): string {
  if (!labels) return "";
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return "";
  const escape = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
  return "{" + keys.map((k) => `${k}="${escape(labels[k]!)}"`).join(",") + "}";
}

function safeRead(read: () => number): number {
  try {
    return read();
  } catch {
    return Number.NaN;
  }
}
