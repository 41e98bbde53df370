// The rate-limited warning line for stream limits, shared by the tunnel's proxy protocol and the
// hot path's multiplexed UDP. A leaf module (log and metrics only): the hot path imports it
// without loading the tunnel's index, which pulls in libp2p, Noise and yamux.

import { LogLimiter, type Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { LIMIT_LOG_INTERVAL_MS } from "./constants.ts";

/**
 * One line per peer per LIMIT_LOG_INTERVAL_MS when a limit is hit; the next line says how many
 * were not logged. (No flush: a summary line would make it two a minute.)
 */
export function limitLogger(log: Logger, m: MetricsRegistry, clock?: { now(): number }): LogLimiter {
  const suppressedTotal = m.counter("log_suppressed_total", "Warnings not written because the same one was written within the rate-limit interval");
  return new LogLimiter({ log, intervalMs: LIMIT_LOG_INTERVAL_MS, suppressedTotal, clock });
}
