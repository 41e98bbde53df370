// The Kubernetes source against the stand-in apiserver (test/support/apiserver.ts): every kind,
// watch drops, 410 relists, bookmarks, and API discovery fallbacks.

import { afterEach, describe, expect, test } from "bun:test";
import { resolveMode } from "../../src/control/kube/index.ts";
import { startStandInApiServer, type StandInApiServer } from "../support/apiserver.ts";
import * as fx from "../support/apiserver/fixtures.ts";
import { makeSource, removeDir, waitFor, type Harness } from "../support/apiserver/harness.ts";

let api: StandInApiServer | undefined;
let h: Harness | undefined;

afterEach(async () => {
  await h?.source.stop();
  await api?.stop();
  if (h) removeDir(h.stateDir);
  api = h = undefined;
});



function seed(s: StandInApiServer): void {
  s.add("Service", fx.service("default", "web", "10.96.0.10"));
  s.add("Service", fx.service("default", "db", "10.96.0.11", 5432));
  s.add("EndpointSlice", fx.endpointSlice("default", "web", ["10.244.0.5", "10.244.1.6"]));
  s.add("Node", fx.node("edge-1", "192.168.1.10"));
  s.add("DestinationRule", fx.destinationRule("default", "web", { simple: "RANDOM" }));
  s.add("Gateway", fx.gateway("default", "gw"));
  s.add("VirtualService", fx.virtualService("default", "vs", "gw", "web"));
}

describe("kubernetes source", () => {
  test("the first sync writes every kind to the store in one change, then the source is ready", async () => {
    api = await startStandInApiServer();
    seed(api);
    h = makeSource(api.url);
    const before = h.store.revision;
    expect(h.source.ready()).toBe(false);
    await h.source.start();
    expect(h.source.ready()).toBe(true);
    expect(h.source.status().live).toBe(true);
    expect(h.store.revision - before).toBe(1);
    const snap = h.store.snapshot();
    expect([...snap.Service.keys()].sort()).toEqual(["default/db", "default/web"]);
    expect(snap.EndpointSlice.get("default/web-abcde")?.endpoints).toHaveLength(2);
    expect(snap.Node.has("/edge-1")).toBe(true);
    expect(snap.DestinationRule.get("default/web")?.spec.trafficPolicy.loadBalancer.simple).toBe("RANDOM");
    expect(snap.Gateway.has("default/gw")).toBe(true);
    expect(snap.VirtualService.has("default/vs")).toBe(true);
    // List items come without kind/apiVersion; the source fills them in, and trims what nobody reads.
    expect(snap.Service.get("default/web")?.kind).toBe("Service");
    expect(snap.EndpointSlice.get("default/web-abcde")?.apiVersion).toBe("discovery.k8s.io/v1");
    expect(snap.Node.get("/edge-1")?.metadata).not.toHaveProperty("managedFields");
    expect(snap.Node.get("/edge-1")?.status).not.toHaveProperty("images");
    // Lists are paged and watches ask for bookmarks.
    expect(api.requests.some((r) => r.path === "/api/v1/services" && r.query.limit === "500")).toBe(true);
    await waitFor("watches with bookmarks", () => api!.requests.some((r) => r.query.watch === "true" && r.query.allowWatchBookmarks === "true"));
  });

  test("add, update and delete of each kind reach the store", async () => {
    api = await startStandInApiServer();
    seed(api);
    h = makeSource(api.url);
    await h.source.start();
    const s = api;
    const store = h.store;

    s.add("Service", fx.service("prod", "api", "10.96.1.1"));
    s.update("Service", { ...fx.service("default", "web", "10.96.0.10", 8080) });
    s.remove("Service", "default", "db");
    await waitFor("service changes", () => store.snapshot().Service.has("prod/api") && !store.snapshot().Service.has("default/db")
      && store.snapshot().Service.get("default/web")?.spec.ports[0].port === 8080);

    s.update("EndpointSlice", fx.endpointSlice("default", "web", ["10.244.0.5", "10.244.1.6", "10.244.2.7"]));
    s.add("EndpointSlice", fx.endpointSlice("prod", "api", ["10.244.3.1"], { suffix: "xyz" }));
    await waitFor("slice update", () => store.snapshot().EndpointSlice.get("default/web-abcde")?.endpoints.length === 3
      && store.snapshot().EndpointSlice.has("prod/api-xyz"));
    s.remove("EndpointSlice", "default", "web-abcde");
    await waitFor("slice delete", () => !store.snapshot().EndpointSlice.has("default/web-abcde"));

    s.add("Node", fx.node("edge-2", "192.168.1.11"));
    s.remove("Node", undefined, "edge-1");
    await waitFor("nodes", () => store.snapshot().Node.has("/edge-2") && !store.snapshot().Node.has("/edge-1"));

    s.update("DestinationRule", fx.destinationRule("default", "web", { consistentHash: { useSourceIp: true } }));
    await waitFor("destination rule update", () => store.snapshot().DestinationRule.get("default/web")?.spec.trafficPolicy.loadBalancer.consistentHash?.useSourceIp === true);
    s.remove("DestinationRule", "default", "web");
    s.add("Gateway", fx.gateway("default", "gw2", 8443));
    s.remove("Gateway", "default", "gw");
    s.update("VirtualService", fx.virtualService("default", "vs", "gw2", "web"));
    await waitFor("istio kinds", () => !store.snapshot().DestinationRule.has("default/web")
      && store.snapshot().Gateway.has("default/gw2") && !store.snapshot().Gateway.has("default/gw")
      && store.snapshot().VirtualService.get("default/vs")?.spec.gateways[0] === "gw2");
    s.remove("VirtualService", "default", "vs");
    await waitFor("virtual service delete", () => store.snapshot().VirtualService.size === 0);
  });

  test("a watch cut mid-event resumes from the last resourceVersion without relisting", async () => {
    api = await startStandInApiServer();
    seed(api);
    h = makeSource(api.url);
    await h.source.start();
    api.add("Service", fx.service("default", "late", "10.96.0.20"));
    await waitFor("late service", () => h!.store.snapshot().Service.has("default/late"));
    const seen = api.resourceVersion;
    const lists = h.metrics.snapshot()['kube_lists_total{kind="Service"}'];
    const watchesBefore = api.requests.filter((r) => r.path === "/api/v1/services" && r.query.watch === "true").length;

    expect(api.dropWatches(true)).toBeGreaterThanOrEqual(6);
    api.add("Service", fx.service("default", "after-drop", "10.96.0.21"));
    await waitFor("service added after the drop", () => h!.store.snapshot().Service.has("default/after-drop"));

    const watches = api.requests.filter((r) => r.path === "/api/v1/services" && r.query.watch === "true");
    expect(watches.length).toBe(watchesBefore + 1);
    expect(Number(watches.at(-1)!.query.resourceVersion)).toBe(seen);
    expect(h.metrics.snapshot()['kube_lists_total{kind="Service"}']).toBe(lists!);
    expect(h.store.snapshot().Service.has("default/late")).toBe(true);
  });

  for (const goneAs of ["event", "http"] as const) {
    test(`410 Gone (${goneAs === "event" ? "ERROR event" : "HTTP 410"}) relists and drops objects deleted while disconnected`, async () => {
      api = await startStandInApiServer({ goneAs });
      seed(api);
      h = makeSource(api.url);
      await h.source.start();
      await api.down();
      api.remove("Service", "default", "db");
      api.remove("EndpointSlice", "default", "web-abcde");
      api.add("Service", fx.service("default", "new", "10.96.0.30"));
      api.compact();
      await api.up();
      await waitFor("relisted services", () => !h!.store.snapshot().Service.has("default/db") && h!.store.snapshot().Service.has("default/new"));
      await waitFor("relisted slices", () => h!.store.snapshot().EndpointSlice.size === 0);
      expect(h.metrics.snapshot()['kube_relists_total{kind="Service"}']).toBeGreaterThanOrEqual(1);
      // First list from the watch cache (resourceVersion=0, as client-go); the relist after 410 is a consistent read.
      const lists = api.requests.filter((r) => r.path === "/api/v1/services" && r.query.watch !== "true");
      expect(lists[0]!.query.resourceVersion).toBe("0");
      expect(lists.at(-1)!.query.resourceVersion).toBeUndefined();
      expect(h.store.snapshot().Service.has("default/web")).toBe(true);
      await waitFor("every informer healthy again", () => h!.source.status().degraded === undefined);
    });
  }

  test("bookmarks move the resume point, so a resume after compaction needs no relist", async () => {
    api = await startStandInApiServer({ bookmarkIntervalMs: 30 });
    seed(api);
    h = makeSource(api.url);
    await h.source.start();
    api.add("Node", fx.node("edge-9", "192.168.1.19")); // bumps the global resourceVersion only
    const target = String(api.resourceVersion);
    const svc = () => h!.source.status().kinds.find((k) => k.kind === "Service")!;
    await waitFor("bookmark on the services watch", () => svc().resourceVersion === target);
    api.compact();
    api.dropWatches();
    api.add("Service", fx.service("default", "x", "10.96.0.40"));
    await waitFor("service after resume", () => h!.store.snapshot().Service.has("default/x"));
    expect(h.metrics.snapshot()['kube_relists_total{kind="Service"}']).toBe(0);
    expect(h.metrics.snapshot()['kube_watch_bookmarks_total{kind="Service"}']).toBeGreaterThan(0);
  });

  test("without EndpointSlices the source watches v1 Endpoints", async () => {
    api = await startStandInApiServer({ endpointSlices: false });
    api.add("Service", fx.service("default", "web", "10.96.0.10"));
    api.add("Endpoints", fx.endpoints("default", "web", ["10.244.0.5"]));
    h = makeSource(api.url);
    await h.source.start();
    expect(h.store.snapshot().Endpoints.get("default/web")?.subsets[0].addresses[0].ip).toBe("10.244.0.5");
    expect(h.source.status().kinds.map((k) => k.kind)).toContain("Endpoints");
    expect(api.requests.some((r) => r.path.includes("endpointslices"))).toBe(false);
    api.update("Endpoints", fx.endpoints("default", "web", ["10.244.0.6"]));
    await waitFor("endpoints update", () => h!.store.snapshot().Endpoints.get("default/web")?.subsets[0].addresses[0].ip === "10.244.0.6");
  });

  test("missing Istio CRDs are fine: ready, empty, logged once", async () => {
    api = await startStandInApiServer({ istioVersions: [] });
    api.add("Service", fx.service("default", "web", "10.96.0.10"));
    h = makeSource(api.url, { informer: { missingPollMs: 50 } });
    await h.source.start();
    expect(h.source.ready()).toBe(true);
    const dr = h.source.status().kinds.find((k) => k.kind === "DestinationRule")!;
    expect(dr.missing).toBe(true);
    await Bun.sleep(200); // several polls of the missing resources
    expect(h.log.lines.filter((l) => l.includes("resource not served") && l.includes("DestinationRule"))).toHaveLength(1);
    // The CRD gets installed later: its objects show up without a restart.
    api.served.istioVersions = ["v1beta1"];
    api.add("DestinationRule", fx.destinationRule("default", "web", { simple: "RANDOM" }));
    await waitFor("late CRD objects", () => h!.store.snapshot().DestinationRule.has("default/web"));
  });

  test("Istio served only as v1alpha3 is watched at v1alpha3", async () => {
    api = await startStandInApiServer({ istioVersions: ["v1alpha3"] });
    api.add("VirtualService", fx.virtualService("default", "vs", "gw", "web"));
    h = makeSource(api.url);
    await h.source.start();
    expect(h.source.status().kinds.find((k) => k.kind === "VirtualService")!.path).toBe("/apis/networking.istio.io/v1alpha3/virtualservices");
    expect(h.store.snapshot().VirtualService.get("default/vs")?.apiVersion).toBe("networking.istio.io/v1alpha3");
  });

  test("a continue token that expires mid-list falls back to one unpaged list", async () => {
    api = await startStandInApiServer();
    for (let i = 0; i < 25; i++) api.add("Service", fx.service("default", `s${i}`, `10.96.0.${i + 1}`));
    let compacted = false;
    const s = api;
    h = makeSource(api.url, {
      kinds: ["Service"],
      informer: { pageSize: 10 },
      // Under the TLS layer: expire the token right before the second page is asked for.
      fetch: (url, init) => {
        if (url.includes("continue=") && !compacted) {
          compacted = true;
          s.compact();
        }
        return fetch(url, init as RequestInit);
      },
    });
    await h.source.start();
    expect(compacted).toBe(true);
    expect(h.store.snapshot().Service.size).toBe(25);
    const lists = api.requests.filter((r) => r.path === "/api/v1/services" && r.query.watch !== "true");
    expect(lists.map((r) => r.query.limit ?? "none")).toEqual(["10", "10", "none"]);
  });

  test("an Istio CRD removed while watched empties its kind instead of reporting an outage", async () => {
    api = await startStandInApiServer({ istioVersions: ["v1beta1"] });
    api.add("Service", fx.service("default", "web", "10.96.0.10"));
    api.add("Gateway", fx.gateway("default", "gw"));
    h = makeSource(api.url, { informer: { missingPollMs: 50 } });
    await h.source.start();
    expect(h.store.snapshot().Gateway.size).toBe(1);
    api.served.istioVersions = [];
    api.dropWatches();
    await waitFor("gateways emptied", () => h!.store.snapshot().Gateway.size === 0);
    expect(h.source.status().kinds.find((k) => k.kind === "Gateway")!.missing).toBe(true);
    await waitFor("no outage reported", () => h!.source.status().degraded === undefined);
    expect(h.store.snapshot().Service.size).toBe(1);
  });

  test("resolveMode's result wires straight into the source (edge mode, MetaServer address from the config)", async () => {
    api = await startStandInApiServer();
    api.add("Service", fx.service("default", "web", "10.96.0.10"));
    const conn = resolveMode({ metaServer: { server: api.url } }, {});
    h = makeSource("unused", { ...conn });
    await h.source.start();
    expect(h.source.status()).toMatchObject({ live: true, mode: "edge", server: api.url });
    expect(h.log.lines.some((l) => l.includes("watching") && l.includes("KubeEdge MetaServer"))).toBe(true);
  });
});
