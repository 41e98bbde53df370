// How an agent gets its engine: Linux only, created once, and sized so the descriptors it adds
// fit the soft RLIMIT_NOFILE next to the connection cap. A failure to start it (no bun:ffi libc,
// no Worker, out of fds) is not fatal: the proxy runs without it and every byte moves through JS.

import type { Logger } from "../../log/index.ts";
import type { MetricsRegistry } from "../../metrics/index.ts";
import { createZeroCopyEngine, type ZeroCopyEngine } from "./engine.ts";
import { compileNativeLoop } from "./native/compile.ts";

/** Most pairs one engine holds: elephant flows are few; past it connections stay in JS. */
export const ZC_MAX_PAIRS = 1024;
/** One adopted pair for every this many connections allowed (by default). */
export const ZC_CONNECTIONS_PER_PAIR = 8;
/** Descriptors an adopted pair holds beyond the 2 its connection already counts: 2 pipes. */
export const ZC_EXTRA_FDS_PER_PAIR = 4;

export interface FdBudget {
  maxConnections: number;
  maxPairs: number;
}

/**
 * Split `softLimit - reservedFds` descriptors between connections (fdsPerConnection each) and
 * adopted pairs (4 more each) so that maxConnections*2 + maxPairs*4 + reserve <= soft limit:
 * maxPairs = min(1024, connections/8), then maxConnections lowered by what the pairs take.
 * A configured cap is kept as is and the pairs get what is left (possibly 0: no engine).
 */
export function zeroCopyFdBudget(softLimit: number, reservedFds: number, fdsPerConnection: number, configuredMax = 0): FdBudget {
  const budget = Math.max(0, softLimit - reservedFds);
  if (configuredMax > 0) {
    const left = budget - configuredMax * fdsPerConnection;
    const maxPairs = Math.max(0, Math.min(ZC_MAX_PAIRS, Math.floor(configuredMax / ZC_CONNECTIONS_PER_PAIR), Math.floor(left / ZC_EXTRA_FDS_PER_PAIR)));
    return { maxConnections: configuredMax, maxPairs };
  }
  const all = Math.floor(budget / fdsPerConnection);
  const maxPairs = Math.min(ZC_MAX_PAIRS, Math.floor(all / ZC_CONNECTIONS_PER_PAIR));
  const maxConnections = Math.max(64, Math.floor((budget - maxPairs * ZC_EXTRA_FDS_PER_PAIR) / fdsPerConnection));
  return { maxConnections, maxPairs };
}

/**
 * The engine on Linux, or undefined (other OS, maxPairs 0, or it failed to start: logged once).
 * By default the C flow loop (native/): its pair table holds maxPairs * ZC_CONNECTIONS_PER_PAIR
 * connections (every connection the fd budget allows, as a pair holds no fds beyond its two
 * sockets) and pipes for at most maxPairs*2 directions (the 4 fds per pair the budget set
 * aside). If it cannot be compiled (no TinyCC headers, a Bun without `cc`), one warning and the
 * JS splice(2) engine for elephant flows. `native: false` asks for the JS engine directly.
 */
export function createZeroCopyIfSupported(opts: {
  maxPairs: number;
  log: Logger;
  metrics: MetricsRegistry;
  native?: boolean;
  /** Another C source for the loop (tests: one that fails to compile). */
  nativeSource?: string;
}): ZeroCopyEngine | undefined {
  if (process.platform !== "linux" || opts.maxPairs <= 0) return undefined;
  if (opts.native !== false) {
    try {
      const loop = compileNativeLoop(opts.nativeSource);
      return createZeroCopyEngine({ ...opts, maxPairs: opts.maxPairs * ZC_CONNECTIONS_PER_PAIR, native: { loop, maxPiped: opts.maxPairs * 2 } });
    } catch (err) {
      opts.log.warn("native flow loop unavailable; small TCP flows stay in JS", { err: String(err) });
    }
  }
  try {
    return createZeroCopyEngine({ maxPairs: opts.maxPairs, log: opts.log, metrics: opts.metrics });
  } catch (err) {
    opts.log.warn("zero-copy engine unavailable; TCP bulk flows stay in JS", { err });
    return undefined;
  }
}
