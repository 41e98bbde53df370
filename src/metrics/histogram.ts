// A Prometheus histogram the hot path can observe into without allocating: the bucket bounds and
// counts are typed arrays made once at registration, and observe() is a short loop over plain
// numbers. Rendering (cumulative buckets, _sum, _count) happens only at scrape time.

export class Histogram {
  /** Upper bounds in ascending order, without +Inf. */
  readonly bounds: Float64Array;
  /** Observations per bucket (not cumulative); the last slot is the +Inf bucket. */
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    /** Rendered label set, "" or `{k="v",...}`. */
    readonly labels: string,
    bounds: readonly number[],
  ) {
    this.bounds = Float64Array.from(bounds);
    this.buckets = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const b = this.bounds;
    const n = b.length;
    let i = 0;
    while (i < n && value > b[i]!) i++;
    this.buckets[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** `count` bounds from `start`, each `factor` times the previous (as client_golang's ExponentialBuckets). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  const out: number[] = [];
  for (let i = 0, v = start; i < count; i++, v *= factor) out.push(Number(v.toPrecision(6)));
  return out;
}

/**
 * Request and dial latencies, seconds: 0.25 ms .. 8.2 s, doubling. The same buckets as CoreDNS's
 * coredns_dns_request_duration_seconds, so dashboards and quantiles compare one to one.
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = exponentialBuckets(0.00025, 2, 16);

/** Control-plane work (compile, publish, iptables apply), seconds: 1 ms .. 16 s, doubling. */
export const CONTROL_BUCKETS_SECONDS: readonly number[] = exponentialBuckets(0.001, 2, 15);
