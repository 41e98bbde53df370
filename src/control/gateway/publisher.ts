// The gateway publisher: the one writer of the current GatewayTable. It recompiles when the
// kinds compileGateway reads change in the store (Gateway, VirtualService, Secret, Service: map
// identity tells) or when the selected NIC addresses change, merges bursts with the same
// bounded-frequency runner as the RouteTable publisher, and swaps one reference. Each distinct
// warning is logged once while it persists.

import type { Logger } from "../../log/index.ts";
import type { MetricsRegistry } from "../../metrics/index.ts";
import { systemClock, type Clock } from "../clock.ts";
import { DEFAULT_PUBLISH_MIN_INTERVAL_MS } from "../publisher.ts";
import { createRunner } from "../runner.ts";
import type { ObjectStore, StoreSnapshot } from "../store.ts";
import { compileGateway, EMPTY_GATEWAY_TABLE, type GatewayCompileOptions } from "./compile.ts";
import type { AddressSource } from "./nic-source.ts";
import type { GatewayTable, GatewayTableSource } from "./types.ts";

export interface GatewayPublisherOptions {
  store: ObjectStore;
  addresses: AddressSource;
  compileOptions: GatewayCompileOptions;
  log: Logger;
  clock?: Clock;
  minIntervalMs?: number;
  metrics?: MetricsRegistry;
}

export interface GatewayPublisher extends GatewayTableSource {
  /** Compile and publish now if an input changed; returns current(). */
  flush(): GatewayTable;
  stop(): void;
}

export function createGatewayPublisher(o: GatewayPublisherOptions): GatewayPublisher {
  const clock = o.clock ?? systemClock;
  const listeners = new Set<(t: GatewayTable) => void>();
  const compiles = o.metrics?.counter("gateway_table_compiles_total", "Gateway tables compiled and published");
  const versionGauge = o.metrics?.gauge("gateway_table_version", "Version of the published gateway table");
  let current: GatewayTable = EMPTY_GATEWAY_TABLE;
  let last: { snapshot: StoreSnapshot; addresses: readonly string[] } | null = null;
  let lastWarnings = new Set<string>();
  const report = o.compileOptions.warn ?? ((m: string) => o.log.warn(m));

  const sync = (): void => {
    const snapshot = o.store.snapshot();
    const addresses = o.addresses.current();
    if (
      last !== null &&
      last.addresses === addresses &&
      last.snapshot.Gateway === snapshot.Gateway &&
      last.snapshot.VirtualService === snapshot.VirtualService &&
      last.snapshot.Secret === snapshot.Secret &&
      last.snapshot.Service === snapshot.Service
    ) {
      return;
    }
    const warnings = new Set<string>();
    const next = compileGateway(snapshot, addresses, { ...o.compileOptions, warn: (m) => warnings.add(m) }, current.version + 1, clock.now());
    for (const w of warnings) if (!lastWarnings.has(w)) report(w);
    lastWarnings = warnings;
    last = { snapshot, addresses };
    current = next;
    if (compiles) compiles.value++;
    if (versionGauge) versionGauge.value = next.version;
    o.log.debug("published gateway table", { version: next.version, ports: next.ports.length, listeners: next.listeners.length });
    for (const l of Array.from(listeners)) {
      try {
        l(next);
      } catch (err) {
        o.log.error("gateway table subscriber failed", { version: next.version, err });
      }
    }
  };

  const runner = createRunner({
    run: sync,
    minIntervalMs: o.minIntervalMs ?? DEFAULT_PUBLISH_MIN_INTERVAL_MS,
    clock,
    onError: (err) => o.log.error("gateway compile failed; keeping the last table", { version: current.version, err }),
  });
  const unsubscribeStore = o.store.onChange(() => runner.request());
  const unsubscribeAddresses = o.addresses.subscribe(() => runner.request());

  return {
    current: () => current,
    subscribe(l) {
      listeners.add(l);
      return () => {
        listeners.delete(l);
      };
    },
    flush() {
      try {
        sync();
      } catch (err) {
        o.log.error("gateway compile failed; keeping the last table", { version: current.version, err });
      }
      return current;
    },
    stop() {
      unsubscribeStore();
      unsubscribeAddresses();
      runner.stop();
    },
  };
}
