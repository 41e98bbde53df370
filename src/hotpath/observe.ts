// What the proxy reports beyond its global counters: per service port series (bounded by a
// LabelBudget; ports past it share an overflow series), connect-time histograms, and warnings for
// data-path failures (dial failed, no endpoints, tunnel peer unreachable), rate-limited per
// service + endpoint + reason so a flood of one failure writes a line per interval, not per event.
// Series are made when a listener opens and dropped when it closes; the hot path only bumps
// fields. A warning allocates its key and context, but only on a failure, never per chunk.

import type { Endpoint, ServicePort } from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import { LogLimiter } from "../log/index.ts";
import { LIMIT_LOG_INTERVAL_MS } from "../tunnel/constants.ts";
import {
  type Counter,
  type Histogram,
  LabelBudget,
  LATENCY_BUCKETS_SECONDS,
  type MetricsRegistry,
  OVERFLOW_LABEL,
} from "../metrics/index.ts";

/**
 * Service ports with series of their own. Each costs 5 series (connections and 4 failure
 * reasons); 512 ports is 2560 series, which a Prometheus server takes per node without notice.
 */
export const MAX_SERVICE_PORT_SERIES = 512;

export const FAILURE_REASONS = ["dial_error", "dial_timeout", "no_endpoint", "limit"] as const;

export interface PortMetrics {
  /** TCP connections accepted, or UDP flows created. */
  readonly connections: Counter;
  readonly dialErrors: Counter;
  readonly dialTimeouts: Counter;
  readonly noEndpoint: Counter;
  readonly limit: Counter;
}

const CONNECTIONS = "proxy_service_connections_total";
const CONNECTIONS_HELP = "Connections (TCP) or flows (UDP) accepted on a service port";
const ACTIVE = "proxy_service_active";
const ACTIVE_HELP = "TCP connections or UDP flows open now on a service port (TCP's limit: proxy_service_active_max)";
const FAILURES = "proxy_service_failures_total";
const FAILURES_HELP = "Failures on a service port: dial_error, dial_timeout, no_endpoint (none left to try), limit (connection cap)";

/** Per service port metrics, bounded by MAX_SERVICE_PORT_SERIES. */
export class PortMetricsSet {
  readonly #budget: LabelBudget;
  readonly #overflow = new Map<string, PortMetrics>();
  constructor(
    private readonly m: MetricsRegistry,
    max = MAX_SERVICE_PORT_SERIES,
  ) {
    this.#budget = new LabelBudget(max);
  }

  /** The series of a service port (made now), or the overflow series of its protocol. */
  acquire(sp: ServicePort): PortMetrics {
    if (this.#budget.take(sp.key)) return this.#make(labelsOf(sp));
    let o = this.#overflow.get(sp.protocol);
    if (o === undefined) {
      o = this.#make({ namespace: OVERFLOW_LABEL, service: OVERFLOW_LABEL, port: "0", protocol: sp.protocol });
      this.#overflow.set(sp.protocol, o);
    }
    return o;
  }

  /**
   * The port's current use against its limit: TCP connections or UDP flows open now, read at
   * scrape time (a port past the series budget has none of its own).
   */
  active(sp: ServicePort, read: () => number): void {
    if (this.#budget.has(sp.key)) this.m.gaugeFn(ACTIVE, ACTIVE_HELP, read, labelsOf(sp));
  }

  /** The port's listener closed: its series leave the exposition (the overflow ones stay). */
  release(sp: Pick<ServicePort, "key" | "namespace" | "name" | "port" | "protocol">): void {
    if (!this.#budget.has(sp.key)) return;
    this.#budget.release(sp.key);
    const labels = labelsOf(sp);
    this.m.remove(CONNECTIONS, labels);
    this.m.remove(ACTIVE, labels);
    for (const reason of FAILURE_REASONS) this.m.remove(FAILURES, { ...labels, reason });
  }

  #make(labels: Record<string, string>): PortMetrics {
    const failure = (reason: string) => this.m.counter(FAILURES, FAILURES_HELP, { ...labels, reason });
    return {
      connections: this.m.counter(CONNECTIONS, CONNECTIONS_HELP, labels),
      dialErrors: failure("dial_error"),
      dialTimeouts: failure("dial_timeout"),
      noEndpoint: failure("no_endpoint"),
      limit: failure("limit"),
    };
  }
}

function labelsOf(sp: Pick<ServicePort, "namespace" | "name" | "port" | "protocol">): Record<string, string> {
  return { namespace: sp.namespace, service: sp.name, port: String(sp.port), protocol: sp.protocol };
}

/** Connect time of one successful dial attempt, local endpoint or through the tunnel. */
export interface ConnectHistograms {
  readonly local: Histogram;
  readonly remote: Histogram;
}

export function connectHistograms(m: MetricsRegistry): ConnectHistograms {
  const h = (path: string) =>
    m.histogram(
      "proxy_connect_duration_seconds",
      "From starting a dial to the upstream being connected (path=remote: the tunnel stream opened and the far agent answered SUCCESS), per successful attempt",
      LATENCY_BUCKETS_SECONDS,
      { path },
    );
  return { local: h("local"), remote: h("remote") };
}

/** Data-path warnings, rate-limited per key. One per proxy (TCP and UDP share it). */
export class DataPathLog {
  readonly limiter: LogLimiter;
  readonly #limits: LogLimiter;
  constructor(
    private readonly log: Logger,
    m: MetricsRegistry,
    clock: { now(): number },
  ) {
    const suppressedTotal = m.counter("log_suppressed_total", "Warnings not written because the same one (same service, endpoint, reason) was written within the rate-limit interval");
    this.limiter = new LogLimiter({ log, clock, suppressedTotal });
    // A connection limit hit: one line per service port (or for the agent) per minute, as the
    // tunnel's limits; not flushed, the next line says how many were not logged.
    this.#limits = new LogLimiter({ log, clock, suppressedTotal, intervalMs: LIMIT_LOG_INTERVAL_MS });
  }

  /** A connection was refused at a limit: the service port's (maxConnectionsPerPort) or the agent's. */
  connectionLimit(service: string, perPort: boolean, max: number): void {
    const key = perPort ? service : "agent";
    const n = this.#limits.admit(key, "connection limit reached");
    if (n < 0) return;
    const ctx: Record<string, unknown> = perPort ? { service, maxConnectionsPerPort: max } : { maxConnections: max, service };
    if (n > 0) ctx.notLogged = n;
    this.log.warn(perPort ? "connection limit of the service port reached: connection refused" : "connection limit of the agent reached: connection refused", ctx);
  }

  /**
   * A dial attempt failed. Through the tunnel, a far agent that answered FAILED is a dial
   * failure over there; anything else (no route, no connection, stream limits) means the peer
   * agent was not reached.
   */
  dialFailed(service: string, ep: Endpoint, remote: boolean, error: Error | null): void {
    const unreachable = remote && (error as { code?: string } | null)?.code !== "PROXY_REFUSED";
    const msg = unreachable ? "tunnel peer unreachable" : "dial failed";
    const endpoint = `${ep.ip}:${ep.port}`;
    const n = this.limiter.admit(`${msg}|${service}|${endpoint}`, msg);
    if (n < 0) return;
    const ctx: Record<string, unknown> = { service, endpoint, reason: reasonOf(error) };
    if (remote) ctx.node = ep.node;
    if (n > 0) ctx.suppressed = n;
    this.log.warn(msg, ctx);
  }

  /** A connection or datagram found no endpoint to go to (none ready, or all failed). */
  noEndpoint(service: string, reason: string): void {
    const n = this.limiter.admit(`no endpoints|${service}|${reason}`, "no endpoints");
    if (n < 0) return;
    this.log.warn("no endpoints", n > 0 ? { service, reason, suppressed: n } : { service, reason });
  }

  /** Report what was held back; the proxy's sweep calls this. */
  flush(): void {
    this.limiter.flush();
  }
}

function reasonOf(error: Error | null): string {
  if (error === null) return "unknown";
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}
