// Offline operation of the Kubernetes source: the API unreachable at start (with and without a
// snapshot), unusable snapshots, and the API going away and coming back while running.

import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compile } from "../../src/control/compile/index.ts";
import { createObjectStore, type ObjectStore } from "../../src/control/store.ts";
import { SNAPSHOT_FILE } from "../../src/control/kube/index.ts";
import { startStandInApiServer, type StandInApiServer } from "../support/apiserver.ts";
import * as fx from "../support/apiserver/fixtures.ts";
import { makeSource, removeDir, tempDir, waitFor, type Harness } from "../support/apiserver/harness.ts";

let api: StandInApiServer | undefined;
const sources: Harness[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const h of sources.splice(0)) await h.source.stop();
  await api?.stop();
  api = undefined;
  for (const d of dirs.splice(0)) removeDir(d);
});

/** What the data plane would serve for default/web:80 from the store right now. */
function webRoute(store: ObjectStore) {
  const port = compile(store.snapshot(), { serviceFilterMode: "FilterIfLabelExists" }, 1, Date.now()).byKey["default/web:80/TCP"];
  return port && { clusterIPs: port.clusterIPs, endpoints: port.endpoints.map((e) => `${e.ip}:${e.port}`) };
}

function track(h: Harness): Harness {
  sources.push(h);
  return h;
}

async function seededApi(): Promise<StandInApiServer> {
  const s = await startStandInApiServer();
  s.add("Service", fx.service("default", "web", "10.96.0.10"));
  s.add("Service", fx.service("default", "db", "10.96.0.11", 5432));
  s.add("EndpointSlice", fx.endpointSlice("default", "web", ["10.244.0.5"]));
  return s;
}

describe("kubernetes source offline", () => {
  test("API down at start with a snapshot: serves it as stale, then switches to live data when the API returns", async () => {
    api = await seededApi();
    const stateDir = tempDir();
    dirs.push(stateDir);
    const first = makeSource(api.url, { stateDir });
    await first.source.start();
    await waitFor("snapshot written", () => existsSync(join(stateDir, SNAPSHOT_FILE)));
    await first.source.stop();

    await api.down();
    api.remove("Service", "default", "db");
    api.add("Service", fx.service("default", "new", "10.96.0.30"));
    const savedText = readFileSync(join(stateDir, SNAPSHOT_FILE), "utf8");

    const h = track(makeSource(api.url, { stateDir, store: createObjectStore() }));
    await h.source.start();
    expect(h.source.ready()).toBe(true);
    const st = h.source.status();
    expect(st.live).toBe(false);
    expect(st.degraded).toMatch(/^stale metadata since \d{4}-\d\d-\d\dT/);
    expect([...h.store.snapshot().Service.keys()].sort()).toEqual(["default/db", "default/web"]);
    expect(h.store.snapshot().EndpointSlice.get("default/web-abcde")?.endpoints[0].addresses[0]).toBe("10.244.0.5");
    expect(h.log.lines.some((l) => l.includes("serving stale metadata from the snapshot"))).toBe(true);
    // The table compiled from the snapshot routes the service: traffic can flow during the outage.
    expect(webRoute(h.store)).toEqual({ clusterIPs: ["10.96.0.10"], endpoints: ["10.244.0.5:8080"] });
    await Bun.sleep(120); // several snapshot intervals: stale data must not be written back as fresh
    expect(readFileSync(join(stateDir, SNAPSHOT_FILE), "utf8")).toBe(savedText);

    await api.up();
    await waitFor("live again", () => h.source.status().live);
    expect(h.source.status().degraded).toBeUndefined();
    expect([...h.store.snapshot().Service.keys()].sort()).toEqual(["default/new", "default/web"]);
    expect(h.log.lines.some((l) => l.includes("switched from the snapshot to live data"))).toBe(true);
    api.update("EndpointSlice", fx.endpointSlice("default", "web", ["10.244.0.9"]));
    await waitFor("live endpoint change routed", () => webRoute(h.store)?.endpoints[0] === "10.244.0.9:8080");
    const savedServices = () => JSON.parse(readFileSync(join(stateDir, SNAPSHOT_FILE), "utf8")).objects.Service.map((o: any) => o.metadata.name).sort();
    await waitFor("snapshot rewritten with live data", () => savedServices().join() === "new,web");
  });

  test("API down at start without a snapshot: not ready with a clear error, retries, becomes ready when the API appears", async () => {
    api = await seededApi();
    await api.down();
    const h = track(makeSource(api.url));
    dirs.push(h.stateDir);
    await h.source.start();
    expect(h.source.ready()).toBe(false);
    expect(h.source.status().error).toMatch(/^Kubernetes API unreachable: .*(ECONNREFUSED|Unable to connect)/);
    expect(h.log.lines.some((l) => l.includes("no snapshot yet: not ready, retrying"))).toBe(true);
    expect(h.store.snapshot().Service.size).toBe(0);
    await Bun.sleep(100);
    expect(h.log.lines.filter((l) => l.includes("cannot reach the Kubernetes API")).length).toBeGreaterThan(1);
    await api.up();
    await waitFor("ready once the API is up", () => h.source.ready());
    expect(h.source.status().live).toBe(true);
    expect(h.store.snapshot().Service.size).toBe(2);
  });

  for (const [what, text] of [
    ["a corrupt snapshot", '{"format":"edgemesh-bun/kube-metadata","version":1,"savedAt":"2026-'],
    ["a snapshot of another version", JSON.stringify({ format: "edgemesh-bun/kube-metadata", version: 99, savedAt: new Date().toISOString(), objects: {} })],
    ["a snapshot with an unknown kind", JSON.stringify({ format: "edgemesh-bun/kube-metadata", version: 1, savedAt: new Date().toISOString(), objects: { Pod: [] } })],
  ] as const) {
    test(`${what} is reported and ignored`, async () => {
      api = await seededApi();
      await api.down();
      const stateDir = tempDir();
      dirs.push(stateDir);
      writeFileSync(join(stateDir, SNAPSHOT_FILE), text);
      const h = track(makeSource(api.url, { stateDir }));
      await h.source.start();
      expect(h.source.ready()).toBe(false);
      expect(h.log.lines.some((l) => l.includes("offline snapshot unusable, ignored"))).toBe(true);
      expect(h.source.status().error).toMatch(/^Kubernetes API unreachable: .*; offline snapshot unusable: .*metadata\.json/);
      expect(h.store.snapshot().Service.size).toBe(0);
    });
  }

  test("the API going away while live keeps the last view and reports degraded until it returns", async () => {
    api = await seededApi();
    const h = track(makeSource(api.url));
    dirs.push(h.stateDir);
    await h.source.start();
    const revision = h.store.revision;
    await api.down();
    await waitFor("degraded", () => /^Kubernetes API unreachable since /.test(h.source.status().degraded ?? ""));
    expect(h.source.ready()).toBe(true);
    expect(h.store.revision).toBe(revision);
    expect(h.store.snapshot().Service.size).toBe(2);
    api.add("Service", fx.service("default", "while-down", "10.96.0.50"));
    await api.up();
    await waitFor("change made during the outage arrives", () => h.store.snapshot().Service.has("default/while-down"));
    await waitFor("healthy", () => h.source.status().degraded === undefined);
  });
});
