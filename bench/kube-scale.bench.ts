// Scale benchmark of the Kubernetes source (issue 5): 10,000 Services and 100,000 endpoints
// (10,000 EndpointSlices of 10) listed from the stand-in apiserver, which runs in its own process
// so the RSS measured here is the agent side only. Prints one JSON document:
// - syncMs: start() to the first complete store write (targets: < 5000 ms);
// - rssMiB after sync and a full GC (target: < 256 MiB), with the baseline before start;
// - endpoint change -> store updated latency (p50/p99/max over N changes), and the time of one
//   compile() of the whole table at that size (store -> table is the publisher's job; adding the
//   two bounds "one endpoint change to published table", target p99 < 50 ms).
//   bun bench/kube-scale.bench.ts [services] [endpointsPerService] [changes]
// With --recovery[=seconds] it instead measures how fast the source notices the API is back after
// an outage (default 20 s), with the default edge-mode tunables (EdgeMesh needed 22.7 s, issue 5):
//   bun bench/kube-scale.bench.ts --recovery=20

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compile } from "../src/control/compile/index.ts";
import { createKubeSource, saveSnapshot } from "../src/control/kube/index.ts";
import { createObjectStore } from "../src/control/store.ts";
import { createPublisher, DEFAULT_PUBLISH_MIN_INTERVAL_MS } from "../src/control/publisher.ts";
import { createLogger } from "../src/log/index.ts";
import { createMetrics } from "../src/metrics/index.ts";
import { startStandInApiServer } from "../test/support/apiserver.ts";
import { endpointSlice, service } from "../test/support/apiserver/fixtures.ts";

const flags = process.argv.slice(2).filter((a) => a.startsWith("--"));
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const SERVICES = Number(args[0] ?? 10_000);
const PER_SERVICE = Number(args[1] ?? 10);
const CHANGES = Math.min(Number(args[2] ?? 200), 1000);
const recovery = flags.find((f) => f.startsWith("--recovery"));
if (recovery) {
  await measureRecovery(Math.min(Number(recovery.split("=")[1] ?? 20), 300));
  process.exit(0);
}
const CHANGE_TIMEOUT_MS = 5000;
const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;

const child = Bun.spawn([process.execPath, join(import.meta.dir, "../test/support/apiserver/main.ts")], { stdout: "pipe", stderr: "inherit" });
const stateDir = mkdtempSync(join(tmpdir(), "edgemesh-kube-bench-"));
try {
  const reader = child.stdout.getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("stand-in apiserver exited");
    first += new TextDecoder().decode(value);
  }
  const { url, control } = JSON.parse(first.split("\n")[0]!) as { url: string; control: string };
  const post = (path: string, body: unknown) => fetch(control + path, { method: "POST", body: JSON.stringify(body) }).then((r) => r.json());
  await post("/seed", { services: SERVICES, endpointsPerService: PER_SERVICE });

  Bun.gc(true);
  const rssBefore = process.memoryUsage().rss;
  const store = createObjectStore();
  const metrics = createMetrics();
  const source = createKubeSource({
    mode: "manual", server: url, store, stateDir, metrics,
    log: createLogger({ level: "warn" }),
    kinds: ["Service", "EndpointSlice", "Node", "DestinationRule", "Gateway", "VirtualService"],
    initialSyncTimeoutMs: 60_000,
  });
  const t0 = performance.now();
  await source.start();
  const syncMs = performance.now() - t0;
  if (!source.status().live) throw new Error(`not live after start: ${JSON.stringify(source.status())}`);
  const slices = store.snapshot().EndpointSlice.size;
  const endpoints = [...store.snapshot().EndpointSlice.values()].reduce((n, s) => n + s.endpoints.length, 0);

  Bun.gc(true);
  const rssAfter = process.memoryUsage().rss;
  const heapAfter = process.memoryUsage().heapUsed;

  const c0 = performance.now();
  const table = compile(store.snapshot(), { serviceFilterMode: "FilterIfLabelExists" }, 1, Date.now());
  const compileMs = performance.now() - c0;

  const s0 = performance.now();
  const snap = store.snapshot();
  await saveSnapshot(join(stateDir, "probe"), { savedAt: Date.now(), server: url, objects: { Service: [...snap.Service.values()], EndpointSlice: [...snap.EndpointSlice.values()] } });
  const snapshotWriteMs = performance.now() - s0;

  // The publisher the agent runs: incremental compile, bursts merged, one reference swapped.
  const publisher = createPublisher({ store, compileOptions: { serviceFilterMode: "FilterIfLabelExists" }, log: createLogger({ level: "warn" }) });
  publisher.flush();

  // One endpoint change at a time: POST to the stand-in, wait for the store to show it, then for
  // a published table whose endpoints carry it.
  const latencies: number[] = [];
  const publishLatencies: number[] = [];
  for (let i = 0; i < CHANGES; i++) {
    const svc = (i * 7919) % SERVICES;
    const ns = `ns-${svc % 100}`;
    const name = `svc-${svc}`;
    const marker = `10.250.${(i >> 8) & 255}.${i & 255}`;
    const ips = Array.from({ length: PER_SERVICE }, (_, j) => (j === 0 ? marker : `10.200.${j}.${i & 255}`));
    let done!: () => void;
    const seen = new Promise<void>((resolve) => (done = resolve));
    const off = store.onChange(() => {
      if (store.snapshot().EndpointSlice.get(`${ns}/${name}-abcde`)?.endpoints[0]?.addresses[0] === marker) done();
    });
    let published!: () => void;
    const seenPublished = new Promise<void>((resolve) => (published = resolve));
    const unsubscribe = publisher.subscribe((t) => {
      const port = t.ports.find((p) => p.namespace === ns && p.name === name);
      if (port?.endpoints.some((e) => e.ip === marker)) published();
    });
    const start = performance.now();
    await post("/apply", { op: "update", kind: "EndpointSlice", obj: endpointSlice(ns, name, ips) });
    const timeout = Bun.sleep(CHANGE_TIMEOUT_MS).then(() => "timeout");
    const r = await Promise.race([seen, timeout]);
    off();
    if (r === "timeout") throw new Error(`change ${i} not seen within ${CHANGE_TIMEOUT_MS} ms`);
    latencies.push(performance.now() - start);
    const rp = await Promise.race([seenPublished, Bun.sleep(CHANGE_TIMEOUT_MS).then(() => "timeout")]);
    unsubscribe();
    if (rp === "timeout") throw new Error(`change ${i} not published within ${CHANGE_TIMEOUT_MS} ms`);
    publishLatencies.push(performance.now() - start);
    // Isolated changes: the publisher merges changes closer than its minimum interval into one
    // run (by design), so back-to-back changes would measure the merge window, not the latency.
    await Bun.sleep(DEFAULT_PUBLISH_MIN_INTERVAL_MS + 10);
  }
  publisher.stop();
  latencies.sort((a, b) => a - b);
  publishLatencies.sort((a, b) => a - b);
  const pctOf = (xs: number[], p: number) => Math.round(xs[Math.min(xs.length - 1, Math.floor(p * xs.length))]! * 100) / 100;
  const pct = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! * 100) / 100;

  const result = {
    bench: "kube-scale",
    services: SERVICES,
    endpointSlices: slices,
    endpoints,
    syncMs: Math.round(syncMs),
    rssBeforeMiB: mib(rssBefore),
    rssAfterSyncMiB: mib(rssAfter),
    heapAfterSyncMiB: mib(heapAfter),
    snapshotWriteMs: Math.round(snapshotWriteMs),
    snapshotBytes: Bun.file(join(stateDir, "probe", "metadata.json")).size,
    compileFullTableMs: Math.round(compileMs * 10) / 10,
    tablePorts: table.ports.length,
    endpointChangeToStoreMs: { n: latencies.length, p50: pct(0.5), p99: pct(0.99), max: pct(1) },
    endpointChangeToPublishedMs: { n: publishLatencies.length, p50: pctOf(publishLatencies, 0.5), p99: pctOf(publishLatencies, 0.99), max: pctOf(publishLatencies, 1) },
    targets: { syncMs: 5000, rssMiB: 256, changeP99Ms: 50 },
    // The source's own targets; compileFullTableMs is reported for the publisher (not this module).
    pass: syncMs < 5000 && mib(rssAfter) < 256 && pctOf(publishLatencies, 0.99) < 50,
  };
  await source.stop(); // writes the last snapshot

  // Restart while the API is unreachable: how long until the agent serves from the snapshot.
  const offline = createKubeSource({
    mode: "manual", server: "http://127.0.0.1:1", store: createObjectStore(), stateDir, metrics: createMetrics(),
    log: createLogger({ level: "error" }), initialSyncTimeoutMs: 60_000,
  });
  const o0 = performance.now();
  await offline.start();
  const offlineReadyMs = performance.now() - o0;
  const offlineStatus = offline.status();
  await offline.stop();
  Object.assign(result, {
    restartWithApiDown: { readyFromSnapshotMs: Math.round(offlineReadyMs), ready: offlineStatus.ready, degraded: offlineStatus.degraded },
  });
  console.log(JSON.stringify(result, null, 2));
} finally {
  child.kill("SIGTERM");
  await child.exited;
  rmSync(stateDir, { recursive: true, force: true });
}

async function measureRecovery(outageS: number): Promise<void> {
  const api = await startStandInApiServer();
  for (let i = 0; i < 100; i++) api.add("Service", service("default", `svc-${i}`, `10.96.0.${i + 1}`));
  const stateDir = mkdtempSync(join(tmpdir(), "edgemesh-kube-recovery-"));
  const store = createObjectStore();
  const source = createKubeSource({ mode: "edge", server: api.url, store, stateDir, metrics: createMetrics(), log: createLogger({ level: "error" }) });
  try {
    await source.start();
    await api.down();
    await Bun.sleep(outageS * 1000);
    api.add("Service", service("default", "added-during-outage", "10.96.1.1"));
    const t0 = performance.now();
    await api.up();
    const deadline = t0 + 60_000;
    while (!store.snapshot().Service.has("default/added-during-outage") && performance.now() < deadline) await Bun.sleep(5);
    const changeVisibleMs = performance.now() - t0;
    while (source.status().degraded !== undefined && performance.now() < deadline) await Bun.sleep(5);
    console.log(JSON.stringify({
      bench: "kube-recovery", outageSeconds: outageS,
      apiBackToChangeInStoreMs: Math.round(changeVisibleMs),
      apiBackToHealthyMs: Math.round(performance.now() - t0),
      edgemeshReferenceMs: 22_700,
    }, null, 2));
  } finally {
    await source.stop();
    await api.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}
