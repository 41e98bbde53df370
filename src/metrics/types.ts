import type { Histogram } from "./histogram.ts";
import type { Labels } from "./labels.ts";

export type MetricType = "counter" | "gauge" | "histogram";

/** A counter or gauge: the hot path does `c.value++` (or sets `value` for a gauge). */
export interface Counter {
  readonly name: string;
  readonly help: string;
  readonly labels: string;
  value: number;
}

export interface FamilyInfo {
  /** Full name as exposed (with the prefix). */
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly series: number;
}

export interface MetricsRegistry {
  /** Get or create a counter. Call at start-up (or when a listener opens), never per packet. */
  counter(name: string, help: string, labels?: Labels): Counter;
  /** Get or create a gauge (same shape; set `value` directly). */
  gauge(name: string, help: string, labels?: Labels): Counter;
  /** A gauge read from a function at scrape time. */
  gaugeFn(name: string, help: string, read: () => number, labels?: Labels): void;
  /**
   * A gauge family whose series are read at scrape time, for label sets that come and go with
   * what they describe (per peer node): `read` returns [labels, value] pairs, and a set it no
   * longer returns is simply gone. Keep the sets bounded (a LabelBudget, or a bounded source).
   */
  gaugeFamily(name: string, help: string, read: () => Iterable<readonly [Labels, number]>): void;
  /** A counter read from a function at scrape time (its source only ever grows). */
  counterFn(name: string, help: string, read: () => number, labels?: Labels): void;
  /** Get or create a histogram with these upper bounds (see LATENCY_BUCKETS_SECONDS). */
  histogram(name: string, help: string, buckets: readonly number[], labels?: Labels): Histogram;
  /** Drop one series (a service port or peer that is gone); the family goes with its last series. */
  remove(name: string, labels?: Labels): void;
  /** The same registry taking names as they are, for the standard process_* families. */
  unprefixed(): MetricsRegistry;
  /** Every family, for the exposition checks in tests. */
  families_(): FamilyInfo[];
  /** Prometheus text exposition format 0.0.4. */
  render(): string;
  /**
   * name{labels} -> value, names as registered (without the prefix), for tests and
   * `edgemesh status`. Histograms appear as name_count{labels} and name_sum{labels}.
   */
  snapshot(): Record<string, number>;
  /** The sum over every series of a family (a histogram counts its observations). */
  sum(name: string): number;
}
