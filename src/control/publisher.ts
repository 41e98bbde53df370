// The publisher: the one writer of the current RouteTable. Store changes request a sync from a
// bounded-frequency runner (bursts merge into one compile per minInterval); a sync compiles the
// store's snapshot into version N+1, swaps one reference and tells subscribers. Consumers read
// current() as a plain field; they never wait on the control plane.

import type { Logger } from "../log/index.ts";
import { CONTROL_BUCKETS_SECONDS, type MetricsRegistry } from "../metrics/index.ts";
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { createCompiler, type CompileOptions } from "./compile/index.ts";
import { createRunner } from "./runner.ts";
import type { ObjectStore } from "./store.ts";
import { EMPTY_TABLE, type RouteTable, type TableSource } from "./table.ts";

/** Default merge window for store-change bursts: a relist of 10k objects compiles once. */
export const DEFAULT_PUBLISH_MIN_INTERVAL_MS = 100;

export interface PublisherOptions {
  store: ObjectStore;
  /**
   * compile() options. Each distinct warning is reported once while it persists (not on every
   * compile): to compileOptions.warn when given, else to log.warn.
   */
  compileOptions: CompileOptions;
  log: Logger;
  clock?: Clock;
  minIntervalMs?: number;
  metrics?: MetricsRegistry;
}

export interface Publisher extends TableSource {
  /** Compile and publish now if the store changed since the last publish; returns current(). */
  flush(): RouteTable;
  /** Stop listening to the store and cancel pending syncs; current() stays readable. */
  stop(): void;
}

export function createPublisher(options: PublisherOptions): Publisher {
  const { store, log } = options;
  const clock = options.clock ?? systemClock;
  const listeners = new Set<(table: RouteTable) => void>();
  const m = options.metrics;
  const compiles = m?.counter("control_compiles_total", "Route tables compiled and published");
  const compileSeconds = m?.histogram("control_compile_duration_seconds", "Time to compile the store into a route table", CONTROL_BUCKETS_SECONDS);
  const publishLatency = m?.histogram(
    "control_publish_latency_seconds",
    "From the first metadata change after a publish to the next table published to its subscribers (proxy listeners, DNS zone)",
    CONTROL_BUCKETS_SECONDS,
  );
  const lastPublish = m?.gauge("control_last_publish_timestamp_seconds", "Unix time of the last route table published");
  const versionGauge = m?.gauge("control_table_version", "Version of the published route table");
  const subscriberErrors = m?.counter("control_subscriber_errors_total", "Table subscribers that threw");
  /** Clock ms of the first store change not yet published; NaN when everything is published. */
  let dirtySince = Number.NaN;

  let current: RouteTable = EMPTY_TABLE;
  let publishedRevision = -1;
  let lastWarnings = new Set<string>();

  // Warnings of the compile in progress; the compiler is created once so it can reuse the
  // output of every service whose objects did not change since the previous compile.
  let warnings = new Set<string>();
  const compiler = createCompiler({
    serviceFilterMode: options.compileOptions.serviceFilterMode,
    cni: options.compileOptions.cni,
    warn: (msg) => {
      warnings.add(msg);
    },
  });

  const sync = (): void => {
    const revision = store.revision;
    if (revision === publishedRevision) return;
    warnings = new Set<string>();
    const started = performance.now();
    const next = compiler.compile(store.snapshot(), current.version + 1, clock.now());
    const elapsed = performance.now() - started;
    // A warning repeats on every compile while its object is unchanged: log only new ones.
    const report = options.compileOptions.warn ?? ((msg: string) => log.warn(msg));
    for (const w of warnings) if (!lastWarnings.has(w)) report(w);
    lastWarnings = warnings;
    publishedRevision = revision;
    current = next;
    if (compiles) compiles.value++;
    compileSeconds?.observe(elapsed / 1000);
    if (versionGauge) versionGauge.value = next.version;
    log.debug("published route table", { version: next.version, ports: next.ports.length, ms: elapsed.toFixed(1) });
    // Copy: a listener may unsubscribe (or subscribe) while being notified.
    for (const listener of Array.from(listeners)) {
      try {
        listener(next);
      } catch (err) {
        if (subscriberErrors) subscriberErrors.value++;
        log.error("route table subscriber failed", { version: next.version, err });
      }
    }
    const now = clock.now();
    if (publishLatency && !Number.isNaN(dirtySince)) publishLatency.observe(Math.max(0, now - dirtySince) / 1000);
    dirtySince = Number.NaN;
    if (lastPublish) lastPublish.value = now / 1000;
  };

  const runner = createRunner({
    run: sync,
    minIntervalMs: options.minIntervalMs ?? DEFAULT_PUBLISH_MIN_INTERVAL_MS,
    clock,
    onError: (err) => log.error("route table compile failed; keeping the last table", { version: current.version, err }),
  });
  // No run at creation: until a source has filled the store, consumers keep EMPTY_TABLE
  // (version 0, "not synced yet") instead of an empty version 1 they might act on. Objects
  // already in the store are published by the next change or by flush().
  const unsubscribeStore = store.onChange(() => {
    if (Number.isNaN(dirtySince)) dirtySince = clock.now();
    runner.request();
  });

  return {
    current: () => current,
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    flush() {
      try {
        sync();
      } catch (err) {
        log.error("route table compile failed; keeping the last table", { version: current.version, err });
      }
      return current;
    },
    stop() {
      unsubscribeStore();
      runner.stop();
    },
  };
}
