import { describe, expect, test } from "bun:test";
import { compileGateway, type GatewayPort } from "../../src/control/gateway/index.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import { createObjectStore } from "../../src/control/store.ts";
import { parseRequestHead, RequestHead } from "../../src/gateway/http/request-head.ts";
import { pickDestination, pickOtherDestination, queryParam, selectRoute, selectVirtualHost } from "../../src/gateway/route.ts";

function port80(http: any[], hosts = ["*"], moreVs: KubeObject[] = []): GatewayPort {
  const store = createObjectStore();
  store.replace({
    Gateway: [{ kind: "Gateway", metadata: { name: "gw", namespace: "default" }, spec: { servers: [{ port: { number: 80, protocol: "HTTP" }, hosts: ["*"] }] } }],
    VirtualService: [{ kind: "VirtualService", metadata: { name: "vs", namespace: "default" }, spec: { hosts, gateways: ["gw"], http } }, ...moreVs],
    Service: ["a", "b", "c", "d"].map((n) => ({ kind: "Service", metadata: { name: n, namespace: "default" }, spec: { ports: [{ port: 80 }] } })),
  });
  const warnings: string[] = [];
  const t = compileGateway(store.snapshot(), ["127.0.0.1"], { clusterDomain: "cluster.local", warn: (w) => warnings.push(w) }, 1, 0);
  if (warnings.length) throw new Error(warnings.join("\n"));
  return t.byPort["80"]!;
}

const to = (svc: string) => ({ destination: { host: svc } });

function req(text: string): RequestHead {
  const h = new RequestHead();
  const bytes = new TextEncoder().encode(text);
  const code = parseRequestHead(bytes, 0, bytes.length, h);
  if (code !== 0) throw new Error(`parse ${code}`);
  return h;
}

function routeFor(port: GatewayPort, text: string): string | null {
  const r = req(text);
  const vh = selectVirtualHost(port, r.host);
  if (vh === null) return "NO-HOST";
  return selectRoute(vh, r, 80)?.destinations[0]!.service ?? null;
}

describe("route matching", () => {
  test("uri exact, prefix and regex (full match, without the query string for exact/regex)", () => {
    const p = port80([
      { match: [{ uri: { exact: "/exact" } }], route: [to("a")] },
      { match: [{ uri: { regex: "/v[0-9]+/items" } }], route: [to("b")] },
      { match: [{ uri: { prefix: "/api" } }], route: [to("c")] },
    ]);
    expect(routeFor(p, "GET /exact HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET /exact?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET /exactly HTTP/1.1\r\nHost: x\r\n\r\n")).toBeNull();
    expect(routeFor(p, "GET /v12/items HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/b");
    expect(routeFor(p, "GET /v12/items/9 HTTP/1.1\r\nHost: x\r\n\r\n")).toBeNull(); // a regex must match it all
    expect(routeFor(p, "GET /apix/y HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/c");
  });

  test("ignoreUriCase, method, authority, headers (exact/prefix/regex/presence), withoutHeaders, queryParams", () => {
    const p = port80([
      { match: [{ uri: { prefix: "/CASE" }, ignoreUriCase: true }], route: [to("a")] },
      { match: [{ method: { exact: "POST" }, uri: { prefix: "/m" } }], route: [to("a")] },
      { match: [{ authority: { prefix: "admin." }, uri: { prefix: "/m" } }], route: [to("b")] },
      { match: [{ headers: { "x-canary": { exact: "yes" } } }], route: [to("b")] },
      { match: [{ headers: { "User-Agent": { regex: ".*Mobile.*" } } }], route: [to("c")] },
      { match: [{ headers: { "x-debug": {} }, withoutHeaders: { "x-prod": {} } }], route: [to("d")] },
      { match: [{ queryParams: { v: { exact: "2" } } }], route: [to("c")] },
      { route: [to("a")] },
    ]);
    expect(routeFor(p, "GET /case/x HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "POST /m HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET /m HTTP/1.1\r\nHost: Admin.Example:8080\r\n\r\n")).toBe("default/b");
    expect(routeFor(p, "GET /m HTTP/1.1\r\nHost: x\r\nX-Canary: yes\r\n\r\n")).toBe("default/b");
    expect(routeFor(p, "GET / HTTP/1.1\r\nHost: x\r\nuser-agent: Foo Mobile Bar\r\n\r\n")).toBe("default/c");
    expect(routeFor(p, "GET / HTTP/1.1\r\nHost: x\r\nx-debug: 1\r\n\r\n")).toBe("default/d");
    expect(routeFor(p, "GET / HTTP/1.1\r\nHost: x\r\nx-debug: 1\r\nx-prod: 1\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET /?a=1&v=2 HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/c");
    expect(routeFor(p, "GET /?v=22 HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/a");
  });

  test("first match wins, in route order, and matches in one route are OR-ed", () => {
    const p = port80([
      { match: [{ uri: { prefix: "/a" } }, { uri: { prefix: "/b" } }], route: [to("a")] },
      { match: [{ uri: { prefix: "/" } }], route: [to("b")] },
      { match: [{ uri: { prefix: "/a" } }], route: [to("c")] },
    ]);
    expect(routeFor(p, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/b");
  });

  test("two VirtualServices for one host merge in namespace/name order", () => {
    const second: KubeObject = { kind: "VirtualService", metadata: { name: "zz", namespace: "default" }, spec: { hosts: ["*"], gateways: ["gw"], http: [{ route: [to("d")] }] } };
    const p = port80([{ match: [{ uri: { prefix: "/a" } }], route: [to("a")] }], ["*"], [second]);
    expect(routeFor(p, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("default/d");
  });

  test("hosts: an unknown name gets no virtual host (404); an IP Host or none goes to the first (EdgeMesh)", () => {
    const p = port80([{ route: [to("a")] }], ["shop.example"]);
    expect(routeFor(p, "GET / HTTP/1.1\r\nHost: shop.example\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET / HTTP/1.1\r\nHost: SHOP.example.:80\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET / HTTP/1.1\r\nHost: other.example\r\n\r\n")).toBe("NO-HOST");
    expect(routeFor(p, "GET / HTTP/1.1\r\nHost: 192.168.1.56:23333\r\n\r\n")).toBe("default/a");
    expect(routeFor(p, "GET / HTTP/1.0\r\n\r\n")).toBe("default/a");
  });

  test("queryParam reads raw values and presence", () => {
    expect(queryParam("a=1&b=&c", "b")).toBe("");
    expect(queryParam("a=1&b=&c", "c")).toBe("");
    expect(queryParam("a=1&ab=2", "b")).toBeNull();
    expect(queryParam("", "a")).toBeNull();
  });
});

describe("weighted destinations", () => {
  test("90/10 split within a tolerance over a seeded sequence, and failover picks another destination", () => {
    const p = port80([{ route: [{ ...to("a"), weight: 90 }, { ...to("b"), weight: 10 }] }]);
    const route = p.http!.any!.routes[0]!;
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const d = pickDestination(route, random)!;
      counts[d.service] = (counts[d.service] ?? 0) + 1;
    }
    expect(counts["default/a"]! / 10_000).toBeGreaterThan(0.88);
    expect(counts["default/a"]! / 10_000).toBeLessThan(0.92);
    const a = route.destinations[0]!;
    for (let i = 0; i < 20; i++) expect(pickOtherDestination(route, a, random)!.service).toBe("default/b");
  });

  test("random edge values stay in range", () => {
    const p = port80([{ route: [{ ...to("a"), weight: 1 }, { ...to("b"), weight: 3 }] }]);
    const route = p.http!.any!.routes[0]!;
    expect(pickDestination(route, () => 0)!.service).toBe("default/a");
    expect(pickDestination(route, () => 0.25)!.service).toBe("default/b");
    expect(pickDestination(route, () => 0.9999999)!.service).toBe("default/b");
  });
});
