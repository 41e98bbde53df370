import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { compileGateway, lookupHost, type GatewayTable } from "../../src/control/gateway/index.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import { createObjectStore } from "../../src/control/store.ts";
import { createTestPki, type TestPki } from "../support/certs.ts";

function gateway(name: string, servers: any[], namespace = "default"): KubeObject {
  return { apiVersion: "networking.istio.io/v1beta1", kind: "Gateway", metadata: { name, namespace }, spec: { selector: { app: "x" }, servers } };
}
function vs(name: string, spec: any, namespace = "default"): KubeObject {
  return { apiVersion: "networking.istio.io/v1beta1", kind: "VirtualService", metadata: { name, namespace }, spec };
}
function service(name: string, ports: number[], namespace = "default"): KubeObject {
  return { apiVersion: "v1", kind: "Service", metadata: { name, namespace }, spec: { clusterIP: "10.96.0.9", ports: ports.map((port) => ({ port, protocol: "TCP" })) } };
}
function secret(name: string, data: Record<string, string>, namespace = "default"): KubeObject {
  const enc: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) enc[k] = Buffer.from(v).toString("base64");
  return { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name, namespace }, data: enc };
}

function build(objs: { gateways?: KubeObject[]; vss?: KubeObject[]; services?: KubeObject[]; secrets?: KubeObject[] }, addresses = ["10.0.0.1"]) {
  const store = createObjectStore();
  store.replace({ Gateway: objs.gateways ?? [], VirtualService: objs.vss ?? [], Service: objs.services ?? [], Secret: objs.secrets ?? [] });
  const warnings: string[] = [];
  const table = compileGateway(store.snapshot(), addresses, { clusterDomain: "cluster.local", warn: (m) => warnings.push(m) }, 3, 99);
  return { table, warnings };
}

const http80 = { port: { number: 80, name: "http", protocol: "HTTP" }, hosts: ["*"] };

function routesOf(table: GatewayTable, port: number, host: string) {
  const p = table.byPort[String(port)]!;
  return lookupHost(p.http!, host)?.routes ?? [];
}

describe("compileGateway: ports and listeners", () => {
  test("one listener per selected address and Gateway port, sorted, and the table is deeply frozen", () => {
    const { table } = build(
      { gateways: [gateway("gw", [http80, { port: { number: 9000, protocol: "TCP" }, hosts: ["*"] }])] },
      ["10.0.0.1", "192.168.1.5"],
    );
    expect(table.version).toBe(3);
    expect(table.listeners.map((l) => `${l.key} ${l.mode}`)).toEqual(["10.0.0.1:80 HTTP", "10.0.0.1:9000 TCP", "192.168.1.5:80 HTTP", "192.168.1.5:9000 TCP"]);
    expect(Object.isFrozen(table)).toBe(true);
    expect(Object.isFrozen(table.listeners[0])).toBe(true);
    expect(Object.isFrozen(table.byPort["80"]!.servers)).toBe(true);
  });

  test("a second server of another protocol on a taken port is ignored with a warning naming both", () => {
    const { table, warnings } = build({
      gateways: [gateway("a", [http80]), gateway("b", [{ port: { number: 80, protocol: "TCP" }, hosts: ["*"] }])],
    });
    expect(table.byPort["80"]!.mode).toBe("HTTP");
    expect(warnings.some((w) => w.includes("Gateway default/b") && w.includes("default/a") && w.includes("port 80"))).toBe(true);
  });

  test("bad servers are named: port number, unknown protocol, HTTPS without a credential, ISTIO_MUTUAL", () => {
    const { table, warnings } = build({
      gateways: [
        gateway("gw", [
          { port: { number: 0, protocol: "HTTP" }, hosts: ["*"] },
          { port: { number: 81, protocol: "SMTP" }, hosts: ["*"] },
          { port: { number: 443, protocol: "HTTPS" }, hosts: ["*"] },
          { port: { number: 444, protocol: "HTTPS" }, hosts: ["*"], tls: { mode: "ISTIO_MUTUAL", credentialName: "x" } },
        ]),
      ],
    });
    expect(table.ports).toEqual([]);
    expect(warnings.some((w) => w.includes("spec.servers[0].port.number"))).toBe(true);
    expect(warnings.some((w) => w.includes("spec.servers[1].port.protocol") && w.includes("SMTP"))).toBe(true);
    expect(warnings.some((w) => w.includes("spec.servers[2]") && w.includes("credentialName"))).toBe(true);
    expect(warnings.some((w) => w.includes("spec.servers[3].tls.mode ISTIO_MUTUAL"))).toBe(true);
  });
});

describe("compileGateway: binding VirtualServices", () => {
  const web = service("web", [80]);
  const api = service("api", [8080]);

  test("EdgeMesh's example binds: gateway name in the same namespace, hosts *, prefix /", () => {
    const { table, warnings } = build({
      gateways: [gateway("edgemesh-gateway", [http80])],
      services: [web],
      vss: [vs("vs", { hosts: ["*"], gateways: ["edgemesh-gateway"], http: [{ match: [{ uri: { prefix: "/" } }], route: [{ destination: { host: "web", port: { number: 80 } } }] }] })],
    });
    expect(warnings).toEqual([]);
    const routes = routesOf(table, 80, "anything.example");
    expect(routes.map((r) => r.id)).toEqual(["default/vs:http[0]"]);
    expect(routes[0]!.destinations[0]).toMatchObject({ service: "default/web", port: 80, key: "default/web:80/TCP", weight: 1 });
    expect(table.routeIds).toEqual(["default/vs:http[0]"]);
  });

  test("a short gateway name found only in another namespace still binds (EdgeMesh compares names), with a warning", () => {
    const { table, warnings } = build({
      gateways: [gateway("edgemesh-gateway", [http80], "kubeedge")],
      services: [web],
      vss: [vs("vs", { hosts: ["*"], gateways: ["edgemesh-gateway"], http: [{ route: [{ destination: { host: "web" } }] }] })],
    });
    expect(routesOf(table, 80, "x").length).toBe(1);
    expect(warnings.some((w) => w.includes("kubeedge/edgemesh-gateway") && w.includes("as EdgeMesh does"))).toBe(true);
  });

  test("namespace/name references, and a missing gateway is named", () => {
    const { table, warnings } = build({
      gateways: [gateway("gw", [http80], "edge")],
      services: [web],
      vss: [vs("vs", { hosts: ["*"], gateways: ["edge/gw", "nope"], http: [{ route: [{ destination: { host: "web" } }] }] })],
    });
    expect(routesOf(table, 80, "x").length).toBe(1);
    expect(warnings.some((w) => w.includes('gateway "nope"') && w.includes("not found"))).toBe(true);
  });

  test("hosts: a server host narrows the VirtualService's *, wildcards cover subdomains, exact beats wildcard", () => {
    const { table } = build({
      gateways: [gateway("gw", [{ port: { number: 80, protocol: "HTTP" }, hosts: ["shop.example.com", "*.api.example.com"] }])],
      services: [web, api],
      vss: [
        vs("a-all", { hosts: ["*"], gateways: ["gw"], http: [{ route: [{ destination: { host: "web" } }] }] }),
        vs("b-api", { hosts: ["v1.api.example.com"], gateways: ["gw"], http: [{ route: [{ destination: { host: "api" } }] }] }),
      ],
    });
    const p = table.byPort["80"]!;
    expect(Object.keys(p.http!.exact).sort()).toEqual(["shop.example.com", "v1.api.example.com"]);
    expect(p.http!.wildcards.map((w) => w.suffix)).toEqual([".api.example.com"]);
    expect(p.http!.any).toBeNull();
    // As Envoy's virtual hosts: the most specific host name wins, its routes only.
    expect(routesOf(table, 80, "v1.api.example.com").map((r) => r.id)).toEqual(["default/b-api:http[0]"]);
    expect(routesOf(table, 80, "v2.api.example.com").map((r) => r.id)).toEqual(["default/a-all:http[0]"]);
    expect(routesOf(table, 80, "other.example.com")).toEqual([]);
  });

  test("server host namespaces: ns/host only takes VirtualServices of that namespace", () => {
    const { table } = build({
      gateways: [gateway("gw", [{ port: { number: 80, protocol: "HTTP" }, hosts: ["team-a/*"] }], "edge")],
      services: [service("web", [80], "team-a"), service("web", [80], "team-b")],
      vss: [
        vs("a", { hosts: ["a.example"], gateways: ["edge/gw"], http: [{ route: [{ destination: { host: "web" } }] }] }, "team-a"),
        vs("b", { hosts: ["b.example"], gateways: ["edge/gw"], http: [{ route: [{ destination: { host: "web" } }] }] }, "team-b"),
      ],
    });
    expect(routesOf(table, 80, "a.example").map((r) => r.destinations[0]!.key)).toEqual(["team-a/web:80/TCP"]);
    expect(routesOf(table, 80, "b.example")).toEqual([]);
  });

  test("destinations: short, name.ns and FQDN hosts; the only port when none is named; unknown ones are named and unresolved", () => {
    const { table, warnings } = build({
      gateways: [gateway("gw", [http80])],
      services: [service("web", [80]), service("db", [5432, 5433], "data"), service("solo", [7000], "other")],
      vss: [
        vs("vs", {
          hosts: ["*"],
          gateways: ["gw"],
          http: [
            { match: [{ uri: { prefix: "/a" } }], route: [{ destination: { host: "web" } }] },
            { match: [{ uri: { prefix: "/b" } }], route: [{ destination: { host: "solo.other" } }] },
            { match: [{ uri: { prefix: "/c" } }], route: [{ destination: { host: "db.data.svc.cluster.local", port: { number: 5433 } } }] },
            { match: [{ uri: { prefix: "/d" } }], route: [{ destination: { host: "db.data" } }] },
            { match: [{ uri: { prefix: "/e" } }], route: [{ destination: { host: "missing" } }] },
            { match: [{ uri: { prefix: "/f" } }], route: [{ destination: { host: "web", port: { number: 81 } } }] },
          ],
        }),
      ],
    });
    const keys = routesOf(table, 80, "x").map((r) => r.destinations[0]!.key);
    expect(keys).toEqual(["default/web:80/TCP", "other/solo:7000/TCP", "data/db:5433/TCP", "", "", "default/web:81/TCP"]);
    expect(warnings.some((w) => w.includes("spec.http[3].route[0].destination.port") && w.includes("2 TCP ports"))).toBe(true);
    expect(warnings.some((w) => w.includes("spec.http[4]") && w.includes("default/missing not found"))).toBe(true);
    expect(warnings.some((w) => w.includes("spec.http[5]") && w.includes("no TCP port 81"))).toBe(true);
  });

  test("weights are relative; unset weights beside set ones are 0; a regex error names the field and drops only that route", () => {
    const { table, warnings } = build({
      gateways: [gateway("gw", [http80])],
      services: [web, api],
      vss: [
        vs("vs", {
          hosts: ["*"],
          gateways: ["gw"],
          http: [
            { match: [{ uri: { regex: "/bad(" } }], route: [{ destination: { host: "web" } }] },
            { route: [{ destination: { host: "web" }, weight: 90 }, { destination: { host: "api" }, weight: 10 }, { destination: { host: "api" } }] },
          ],
        }),
      ],
    });
    expect(warnings.some((w) => w.includes("spec.http[0].match[0].uri.regex") && w.includes('"/bad("'))).toBe(true);
    const routes = routesOf(table, 80, "x");
    expect(routes.map((r) => r.id)).toEqual(["default/vs:http[1]"]);
    expect(routes[0]!.destinations.map((d) => d.weight)).toEqual([90, 10]);
    expect(routes[0]!.totalWeight).toBe(100);
  });

  test("rewrite, headers, timeout and retries compile; unsupported fields are named", () => {
    const { table, warnings } = build({
      gateways: [gateway("gw", [http80])],
      services: [web],
      vss: [
        vs("vs", {
          hosts: ["*"],
          gateways: ["gw"],
          http: [
            {
              name: "main",
              rewrite: { uri: "/v2/", authority: "web.internal" },
              headers: { request: { set: { "X-Env": "edge" }, add: { "X-Via": "gw" }, remove: ["Cookie"] }, response: { remove: ["server"] } },
              timeout: "1.5s",
              retries: { attempts: 4, perTryTimeout: "250ms" },
              mirror: { host: "web" },
              route: [{ destination: { host: "web" } }],
            },
          ],
        }),
      ],
    });
    const r = routesOf(table, 80, "x")[0]!;
    expect(r.id).toBe("default/vs:main");
    expect(r.rewriteUri).toBe("/v2/");
    expect(r.rewriteAuthority).toBe("web.internal");
    expect(r.requestHeaders).toEqual({ set: [["x-env", "edge"]], add: [["x-via", "gw"]], remove: ["cookie"] });
    expect(r.responseHeaders!.remove).toEqual(["server"]);
    expect(r.timeoutMs).toBe(1500);
    expect(r.retries).toBe(4);
    expect(r.perTryTimeoutMs).toBe(250);
    expect(warnings.some((w) => w.includes("spec.http[0].mirror is not supported"))).toBe(true);
  });

  test("tcp routes bind to TCP ports by match port; tls routes to PASSTHROUGH ports by SNI", () => {
    const { table } = build({
      gateways: [
        gateway("gw", [
          { port: { number: 9000, protocol: "TCP" }, hosts: ["*"] },
          { port: { number: 9001, protocol: "TCP" }, hosts: ["*"] },
          { port: { number: 8443, protocol: "TLS" }, hosts: ["*.example.com"], tls: { mode: "PASSTHROUGH" } },
        ]),
      ],
      services: [web, api],
      vss: [
        vs("tcp", { hosts: ["*"], gateways: ["gw"], tcp: [{ match: [{ port: 9001 }], route: [{ destination: { host: "api" } }] }, { route: [{ destination: { host: "web" } }] }] }),
        vs("tls", { hosts: ["a.example.com", "b.example.com"], gateways: ["gw"], tls: [{ match: [{ sniHosts: ["a.example.com"] }], route: [{ destination: { host: "web" } }] }, { match: [{ sniHosts: ["b.example.com"] }], route: [{ destination: { host: "api" } }] }] }),
      ],
    });
    expect(table.byPort["9000"]!.tcp!.destinations[0]!.key).toBe("default/web:80/TCP");
    expect(table.byPort["9001"]!.tcp!.destinations[0]!.key).toBe("default/api:8080/TCP");
    const sni = table.byPort["8443"]!.sni!;
    expect(table.byPort["8443"]!.mode).toBe("TLS_PASSTHROUGH");
    expect(lookupHost(sni, "a.example.com")!.destinations[0]!.key).toBe("default/web:80/TCP");
    expect(lookupHost(sni, "b.example.com")!.destinations[0]!.key).toBe("default/api:8080/TCP");
    expect(lookupHost(sni, "c.example.com")).toBeNull();
  });
});

describe("compileGateway: certificates", () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createTestPki();
  });
  afterAll(() => pki.cleanup());

  const https = (credentialName: string, hosts = ["*"], extra: any = {}) => ({ port: { number: 443, protocol: "HTTPS" }, hosts, tls: { mode: "SIMPLE", credentialName, ...extra } });

  test("a TLS Secret gives the port its certificate; ca.crt makes client certificates required (EdgeMesh)", () => {
    const { table, warnings } = build({
      gateways: [gateway("gw", [https("tls-a", ["*"], { minProtocolVersion: "TLSV1_2", cipherSuites: ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] })])],
      secrets: [secret("tls-a", { "tls.crt": pki.server.cert, "tls.key": pki.server.key, "ca.crt": pki.ca.pem })],
    });
    expect(warnings).toEqual([]);
    const p = table.byPort["443"]!;
    expect(p.mode).toBe("HTTPS");
    const cfg = p.certs!.any!;
    expect(cfg.secret).toBe("default/tls-a");
    expect(cfg.clientCert).toBe("require");
    expect(cfg.minVersion).toBe("TLSv1.2");
    expect(cfg.ciphers).toBe("ECDHE-RSA-AES128-GCM-SHA256");
    expect(p.requestClientCert).toBe(true);
  });

  test("a rotated certificate changes the revision; a broken Secret is named by key; a missing one too", () => {
    const first = build({ gateways: [gateway("gw", [https("tls-a")])], secrets: [secret("tls-a", { "tls.crt": pki.server.cert, "tls.key": pki.server.key })] });
    const rotated = build({ gateways: [gateway("gw", [https("tls-a")])], secrets: [secret("tls-a", { "tls.crt": pki.client.cert, "tls.key": pki.client.key })] });
    expect(first.table.byPort["443"]!.certs!.any!.revision).not.toBe(rotated.table.byPort["443"]!.certs!.any!.revision);
    expect(first.table.byPort["443"]!.certs!.any!.clientCert).toBe("none");

    const wrongKey = build({ gateways: [gateway("gw", [https("tls-a")])], secrets: [secret("tls-a", { "tls.crt": pki.server.cert, "tls.key": pki.client.key })] });
    expect(wrongKey.warnings.some((w) => w.includes("Secret default/tls-a: tls.key does not belong"))).toBe(true);
    expect(wrongKey.table.byPort["443"]!.certs!.any).toBeNull();

    const garbage = build({ gateways: [gateway("gw", [https("tls-a")])], secrets: [secret("tls-a", { "tls.crt": "nope", "tls.key": pki.server.key })] });
    expect(garbage.warnings.some((w) => w.includes("tls.crt is not a PEM certificate"))).toBe(true);

    const missing = build({ gateways: [gateway("gw", [https("tls-x")])] });
    expect(missing.warnings.some((w) => w.includes("Secret default/tls-x not found"))).toBe(true);
  });

  test("SNI: each server's hosts get its own certificate; the first one is the default", () => {
    const { table } = build({
      gateways: [gateway("gw", [https("tls-a", ["a.example"]), https("tls-b", ["b.example"])])],
      secrets: [
        secret("tls-a", { "tls.crt": pki.server.cert, "tls.key": pki.server.key }),
        secret("tls-b", { "tls.crt": pki.client.cert, "tls.key": pki.client.key }),
      ],
    });
    const certs = table.byPort["443"]!.certs!;
    expect(lookupHost(certs, "a.example")!.secret).toBe("default/tls-a");
    expect(lookupHost(certs, "b.example")!.secret).toBe("default/tls-b");
    expect(lookupHost(certs, "c.example")!.secret).toBe("default/tls-a");
  });
});

describe("createGatewayPublisher", () => {
  test("recompiles for gateway inputs and addresses, not for endpoint changes; warns once per distinct problem", async () => {
    const { createGatewayPublisher } = await import("../../src/control/gateway/index.ts");
    const { createManualClock } = await import("../../src/control/clock.ts");
    const { createMemoryLogger } = await import("../../src/log/index.ts");
    const store = createObjectStore();
    const clock = createManualClock(0);
    let addrs: readonly string[] = ["10.0.0.1"];
    const subs = new Set<(a: readonly string[]) => void>();
    const addresses = { current: () => addrs, subscribe: (l: (a: readonly string[]) => void) => (subs.add(l), () => subs.delete(l)), poll() {}, stop() {} };
    const log = createMemoryLogger();
    const pub = createGatewayPublisher({ store, addresses, compileOptions: { clusterDomain: "cluster.local" }, log, clock, minIntervalMs: 100 });
    const versions: number[] = [];
    pub.subscribe((t) => versions.push(t.version));
    store.replace({ Gateway: [gateway("gw", [http80])], VirtualService: [vs("vs", { hosts: ["*"], gateways: ["gw", "missing"], http: [{ route: [{ destination: { host: "web" } }] }] })] });
    clock.advance(100);
    expect(versions).toEqual([1]);
    expect(pub.current().listeners.map((l) => l.key)).toEqual(["10.0.0.1:80"]);
    store.replace({ EndpointSlice: [] });
    clock.advance(200);
    expect(versions).toEqual([1]);
    addrs = ["10.0.0.1", "10.0.0.2"];
    for (const s of subs) s(addrs);
    clock.advance(200);
    expect(versions).toEqual([1, 2]);
    expect(pub.current().listeners.map((l) => l.key)).toEqual(["10.0.0.1:80", "10.0.0.2:80"]);
    const warned = log.lines.filter((l) => l.includes('gateway \\"missing\\"') || l.includes('gateway "missing"'));
    store.replace({ Service: [service("web", [80])] });
    clock.advance(200);
    expect(versions).toEqual([1, 2, 3]);
    expect(log.lines.filter((l) => l.includes("missing")).length).toBe(warned.length);
    expect(warned.length).toBe(1);
    pub.stop();
  });
});
