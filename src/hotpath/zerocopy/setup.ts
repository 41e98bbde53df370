// How an agent gets its engine: Linux only, created once, and sized so the descriptors it adds
// fit the soft RLIMIT_NOFILE next to the connection cap. A failure to start it (no bun:ffi libc,
// no Worker, out of fds) is not fatal: the proxy runs without it and every byte moves through JS.

import type { Logger } from "../../log/index.ts";
import type { MetricsRegistry } from "../../metrics/index.ts";
import { createZeroCopyEngine, type ZeroCopyDone, type ZeroCopyEngine } from "./engine.ts";
import { compileNativeLoop, type NativeLoop } from "./native/compile.ts";

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
 * aside). The loop is compiled on the first hand-over or start(), with the worker, not here:
 * TinyCC's code paged in and its work cost an idle agent 1.2-1.9 MiB of RSS (mem-bench,
 * 2026-12-06), and a node whose connections all go through the tunnel never hands one over. If
 * it cannot be compiled then (no TinyCC headers, a Bun without `cc`), one warning and the JS
 * splice(2) engine for elephant flows from then on. `native: false` asks for the JS engine directly.
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
      return new CompiledOnFirstUse(opts);
    } catch (err) {
      opts.log.warn("native flow loop unavailable; small TCP flows stay in JS", { err: String(err) });
    }
  }
  return jsEngine(opts);
}

function jsEngine(opts: { maxPairs: number; log: Logger; metrics: MetricsRegistry }): ZeroCopyEngine | undefined {
  try {
    return createZeroCopyEngine({ maxPairs: opts.maxPairs, log: opts.log, metrics: opts.metrics });
  } catch (err) {
    opts.log.warn("zero-copy engine unavailable; TCP bulk flows stay in JS", { err });
    return undefined;
  }
}

/**
 * The C-loop engine, created at once (its metrics are there from the first scrape), its loop
 * compiled on the first adopt() or start(); if that fails, the JS engine from then on (it takes
 * over the same metrics). Every call is the current engine's.
 */
class CompiledOnFirstUse implements ZeroCopyEngine {
  #engine: ZeroCopyEngine;
  #loop: NativeLoop | undefined;
  /** True once the loop compiled or failed to. */
  #tried = false;
  readonly #o: { maxPairs: number; log: Logger; metrics: MetricsRegistry; nativeSource?: string };

  constructor(o: { maxPairs: number; log: Logger; metrics: MetricsRegistry; nativeSource?: string }) {
    this.#o = o;
    this.#engine = createZeroCopyEngine({
      maxPairs: o.maxPairs * ZC_CONNECTIONS_PER_PAIR,
      log: o.log,
      metrics: o.metrics,
      native: { loop: () => this.#loop!, maxPiped: o.maxPairs * 2 },
    });
  }

  /** Compiles the loop before the engine's worker can start (it takes the loop then): once, in
   * the first hand-over's data handler, ~15 ms with the event loop held (the worker's own start
   * defers that connection anyway). */
  #compile(): void {
    if (this.#tried) return;
    this.#tried = true;
    try {
      this.#loop = compileNativeLoop(this.#o.nativeSource);
    } catch (err) {
      this.#o.log.warn("native flow loop unavailable; small TCP flows stay in JS", { err: String(err) });
      const unused = this.#engine;
      const js = jsEngine(this.#o);
      // Without a JS engine the unused one stays, stopped: it refuses every pair.
      if (js !== undefined) this.#engine = js;
      void unused.stop();
    }
  }

  adopt<T>(fdA: number, fdB: number, onDone: ZeroCopyDone<T>, ctx: T): boolean {
    this.#compile();
    return this.#engine.adopt(fdA, fdB, onDone, ctx);
  }
  start(): Promise<boolean> {
    this.#compile();
    return this.#engine.start();
  }
  get ready(): boolean {
    return this.#engine.ready;
  }
  get starting(): boolean {
    return this.#engine.starting;
  }
  get active(): number {
    return this.#engine.active;
  }
  get smallFlows(): boolean {
    return this.#engine.smallFlows;
  }
  bytesMoved(): number {
    return this.#engine.bytesMoved();
  }
  stop(): Promise<void> {
    this.#tried = true; // a stopped engine compiles nothing
    return this.#engine.stop();
  }
}
