// Shared set-up for the Kubernetes source tests: a store, a memory logger, metrics, a temp
// state dir, and a source wired to a stand-in apiserver with fast backoffs.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createObjectStore, type ObjectStore } from "../../../src/control/store.ts";
import { createKubeSource, type KubeSource, type KubeSourceOptions } from "../../../src/control/kube/index.ts";
import { createMemoryLogger } from "../../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../../src/metrics/index.ts";

export interface Harness {
  store: ObjectStore;
  source: KubeSource;
  log: ReturnType<typeof createMemoryLogger>;
  metrics: MetricsRegistry;
  stateDir: string;
}

export function tempDir(prefix = "edgemesh-kube-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function makeSource(server: string, extra: Partial<KubeSourceOptions> = {}): Harness {
  const store = extra.store ?? createObjectStore();
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const stateDir = extra.stateDir ?? tempDir();
  const source = createKubeSource({
    mode: "manual",
    server,
    store,
    stateDir,
    log,
    metrics,
    initialSyncTimeoutMs: 3000,
    snapshotIntervalMs: 50,
    ...extra,
    informer: { backoffInitialMs: 20, backoffMaxMs: 200, ...extra.informer },
  });
  return { store, source, log, metrics, stateDir };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Poll until `cond` is true; fails with `what` after `ms`. */
export async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await Bun.sleep(5);
  }
}
