// Metrics the hot path updates without allocating: counters and gauges are objects with a plain
// numeric field, histograms have preallocated buckets, all created at start-up (or when a
// listener opens), so the hot path does `c.value++` or `h.observe(seconds)`. The registry renders
// Prometheus text for the admin endpoint and the metrics listener. Every module may import this;
// it imports nothing of ours.
//
// Names follow Prometheus conventions: `edgemesh_<area>_<what>` (the prefix is added here),
// counters end in `_total`, durations are seconds (`_seconds`), sizes bytes (`_bytes`), labels
// are bounded (per service port or peer node through a LabelBudget, never per client or flow).

import { Registry } from "./registry.ts";
import type { MetricsRegistry } from "./types.ts";

export type { Counter, FamilyInfo, MetricsRegistry, MetricType } from "./types.ts";
export { Histogram, exponentialBuckets, LATENCY_BUCKETS_SECONDS, CONTROL_BUCKETS_SECONDS } from "./histogram.ts";
export { LabelBudget, OVERFLOW_LABEL, renderLabels, type Labels } from "./labels.ts";
export { formatValue } from "./registry.ts";

export function createMetrics(prefix = "edgemesh_"): MetricsRegistry {
  return new Registry(prefix);
}
export { registerProcessMetrics, type BuildInfo } from "./process.ts";
