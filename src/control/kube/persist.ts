// Writes the offline snapshot (snapshot.ts) while the source has live data: after a change, at
// most once per interval, one write at a time, and a last write on stop. Serialising 10k
// services takes tens of milliseconds, which is why writes are spaced out and never per event.

import type { Kind, KubeObject } from "../objects.ts";
import type { Clock, Logger, MetricsRegistry } from "./deps.ts";
import { saveSnapshot } from "./snapshot.ts";

export interface Persister {
  /** The live view changed: write it within the interval. */
  changed(): void;
  /** Write what is pending now and stop. */
  close(): Promise<void>;
}

export function createPersister(o: {
  stateDir: string;
  server: string;
  clock: Clock;
  log: Logger;
  metrics: MetricsRegistry;
  intervalMs: number;
  view: () => Partial<Record<Kind, KubeObject[]>>;
  /** Only live data is written: a snapshot loaded from disk is not "known live" now. */
  enabled: () => boolean;
}): Persister {
  const writes = o.metrics.counter("kube_snapshot_writes_total", "Offline metadata snapshots written");
  const failures = o.metrics.counter("kube_snapshot_write_errors_total", "Offline metadata snapshot writes that failed");
  let dirty = false;
  let timer: unknown;
  let writing: Promise<void> | undefined;
  let lastWrite = -Infinity;
  let closed = false;

  const write = async () => {
    timer = undefined;
    if (!dirty || !o.enabled()) return;
    dirty = false;
    lastWrite = o.clock.now();
    try {
      await saveSnapshot(o.stateDir, { savedAt: o.clock.now(), server: o.server, objects: o.view() });
      writes.value++;
    } catch (err) {
      failures.value++;
      dirty = true;
      o.log.warn("cannot write the offline snapshot", { stateDir: o.stateDir, error: err as Error });
    }
  };

  const schedule = () => {
    if (timer !== undefined || closed) return;
    const delay = Math.max(0, lastWrite + o.intervalMs - o.clock.now());
    timer = o.clock.setTimeout(() => {
      writing = (writing ?? Promise.resolve()).then(write).then(() => {
        if (dirty && !closed) schedule();
      });
    }, delay);
  };

  return {
    changed() {
      dirty = true;
      schedule();
    },
    async close() {
      closed = true;
      if (timer !== undefined) o.clock.clearTimeout(timer);
      timer = undefined;
      await writing;
      if (dirty) await write();
    },
  };
}
