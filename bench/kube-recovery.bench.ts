// How fast the Kubernetes source notices that the API is back after an outage, with the default
// edge-mode tunables (EdgeMesh needed 22.7 s, issue 5). The stand-in runs in this process; the
// outage length is the first argument in seconds (default 20). Prints one JSON document.
//   bun bench/kube-recovery.bench.ts [outageSeconds]

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKubeSource } from "../src/control/kube/index.ts";
import { createObjectStore } from "../src/control/store.ts";
import { createLogger } from "../src/log/index.ts";
import { createMetrics } from "../src/metrics/index.ts";
import { startStandInApiServer } from "../test/support/apiserver.ts";
import { service } from "../test/support/apiserver/fixtures.ts";

const OUTAGE_S = Math.min(Number(process.argv[2] ?? 20), 300);
const api = await startStandInApiServer();
for (let i = 0; i < 100; i++) api.add("Service", service("default", `svc-${i}`, `10.96.0.${i + 1}`));
const stateDir = mkdtempSync(join(tmpdir(), "edgemesh-kube-recovery-"));
const store = createObjectStore();
const source = createKubeSource({ mode: "edge", server: api.url, store, stateDir, metrics: createMetrics(), log: createLogger({ level: "error" }) });
try {
  await source.start();
  await api.down();
  await Bun.sleep(OUTAGE_S * 1000);
  api.add("Service", service("default", "added-during-outage", "10.96.1.1"));
  const t0 = performance.now();
  await api.up();
  const deadline = t0 + 60_000;
  while (!store.snapshot().Service.has("default/added-during-outage") && performance.now() < deadline) await Bun.sleep(5);
  const changeVisibleMs = performance.now() - t0;
  while (source.status().degraded !== undefined && performance.now() < deadline) await Bun.sleep(5);
  console.log(JSON.stringify({
    bench: "kube-recovery", outageSeconds: OUTAGE_S,
    apiBackToChangeInStoreMs: Math.round(changeVisibleMs),
    apiBackToHealthyMs: Math.round(performance.now() - t0),
    edgemeshReferenceMs: 22_700,
  }, null, 2));
} finally {
  await source.stop();
  await api.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
