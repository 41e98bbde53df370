import { describe, expect, test } from "bun:test";
import { compile, createCompiler, type CompileOptions } from "../../src/control/compile/index.ts";
import { createObjectStore } from "../../src/control/store.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import type { RouteTable } from "../../src/control/table.ts";

type Objects = { services?: KubeObject[]; slices?: KubeObject[]; endpoints?: KubeObject[]; rules?: KubeObject[] };

function build(objs: Objects, options: Partial<CompileOptions> = {}): { table: RouteTable; warnings: string[] } {
  const store = createObjectStore();
  store.replace({
    Service: objs.services ?? [],
    EndpointSlice: objs.slices ?? [],
    Endpoints: objs.endpoints ?? [],
    DestinationRule: objs.rules ?? [],
  });
  const warnings: string[] = [];
  const table = compile(
    store.snapshot(),
    { serviceFilterMode: "FilterIfLabelExists", warn: (m) => warnings.push(m), ...options },
    7,
    1234,
  );
  return { table, warnings };
}

function svc(name: string, spec: any, labels?: Record<string, string>, namespace = "default"): KubeObject {
  return { apiVersion: "v1", kind: "Service", metadata: { name, namespace, labels }, spec };
}

let sliceSeq = 0;
function slice(service: string, ports: any[], endpoints: any[], namespace = "default", extra: any = {}): KubeObject {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${service}-${sliceSeq++}`, namespace, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    ports,
    endpoints,
    ...extra,
  };
}

function ep(ip: string, conditions?: any, node = "node-a", more: any = {}): any {
  return { addresses: [ip], conditions, nodeName: node, ...more };
}

function rule(name: string, spec: any, apiVersion = "networking.istio.io/v1beta1"): KubeObject {
  return { apiVersion, kind: "DestinationRule", metadata: { name, namespace: "default" }, spec };
}

const web = (extra: any = {}) => svc("web", { clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: "web" }], ...extra });

describe("compile: endpoints", () => {
  test("merges every slice of a service, dedupes (ip, port) and sorts by ip then port", () => {
    const { table } = build({
      services: [web()],
      slices: [
        slice("web", [{ name: "http", port: 8080 }], [ep("10.0.0.9"), ep("10.0.0.2")]),
        slice("web", [{ name: "http", port: 8080 }], [ep("10.0.0.2", undefined, "node-b"), ep("10.0.0.10")]),
        slice("other", [{ name: "http", port: 8080 }], [ep("10.9.9.9")]),
      ],
    });
    const port = table.byKey["default/web:80/TCP"]!;
    expect(port.endpoints.map((e) => e.ip)).toEqual(["10.0.0.10", "10.0.0.2", "10.0.0.9"]);
    expect(port.endpoints.every((e) => e.port === 8080 && e.ready)).toBe(true);
  });

  test("named target ports resolve through the slice port with the service port's name", () => {
    const { table } = build({
      services: [
        svc("multi", {
          clusterIP: "10.96.0.11",
          ports: [
            { name: "http", port: 80, targetPort: "web" },
            { name: "metrics", port: 9100, targetPort: "prom" },
            { name: "dns", port: 53, protocol: "UDP", targetPort: 5353 },
          ],
        }),
      ],
      slices: [
        slice(
          "multi",
          [
            { name: "metrics", port: 19100, protocol: "TCP" },
            { name: "http", port: 8080, protocol: "TCP" },
            { name: "dns", port: 5353, protocol: "UDP" },
            { name: "dns", port: 6000, protocol: "TCP" },
          ],
          [ep("10.0.0.1")],
        ),
      ],
    });
    expect(table.byKey["default/multi:80/TCP"]!.endpoints[0]!.port).toBe(8080);
    expect(table.byKey["default/multi:9100/TCP"]!.endpoints[0]!.port).toBe(19100);
    expect(table.byKey["default/multi:53/UDP"]!.endpoints[0]!.port).toBe(5353);
    expect(table.byKey["default/multi:53/UDP"]!.protocol).toBe("UDP");
  });

  test("a slice without the service port's name contributes nothing to that port", () => {
    const { table } = build({
      services: [web()],
      slices: [slice("web", [{ name: "https", port: 8443 }], [ep("10.0.0.1")])],
    });
    expect(table.byKey["default/web:80/TCP"]!.endpoints).toEqual([]);
  });

  test("ready == nil counts as ready; not-ready endpoints are dropped when ready ones exist", () => {
    const { table } = build({
      services: [web()],
      slices: [
        slice("web", [{ name: "http", port: 8080 }], [
          ep("10.0.0.1"),
          ep("10.0.0.2", {}),
          ep("10.0.0.3", { ready: false, serving: true, terminating: true }),
          ep("10.0.0.4", { ready: false }),
        ]),
      ],
    });
    expect(table.byKey["default/web:80/TCP"]!.endpoints.map((e) => e.ip)).toEqual(["10.0.0.1", "10.0.0.2"]);
  });

  test("serving terminating endpoints are used, marked not ready, only when no ready one exists", () => {
    const { table } = build({
      services: [web()],
      slices: [
        slice("web", [{ name: "http", port: 8080 }], [
          ep("10.0.0.3", { ready: false, serving: true, terminating: true }),
          ep("10.0.0.4", { ready: false, serving: false, terminating: true }),
          ep("10.0.0.5", { ready: false, terminating: true }),
          ep("10.0.0.6", { ready: false, serving: true, terminating: false }),
        ]),
      ],
    });
    const eps = table.byKey["default/web:80/TCP"]!.endpoints;
    expect(eps.map((e) => e.ip)).toEqual(["10.0.0.3"]);
    expect(eps[0]!.ready).toBe(false);
  });

  test("node, hostname and zone are carried; v1beta1 topology hostname is the node fallback", () => {
    const { table } = build({
      services: [web()],
      slices: [
        slice("web", [{ name: "http", port: 8080 }], [
          ep("10.0.0.1", { ready: true }, "edge-1", { hostname: "pod-1", zone: "lan-a" }),
          { addresses: ["10.0.0.2"], topology: { "kubernetes.io/hostname": "edge-2" } },
        ]),
      ],
    });
    const [a, b] = table.byKey["default/web:80/TCP"]!.endpoints;
    expect(a).toEqual({ ip: "10.0.0.1", port: 8080, node: "edge-1", ready: true, hostname: "pod-1", zone: "lan-a" });
    expect(b!.node).toBe("edge-2");
  });

  test("v1 Endpoints are used only when the service has no slice; notReadyAddresses are ignored", () => {
    const endpoints: KubeObject = {
      kind: "Endpoints",
      metadata: { name: "web", namespace: "default" },
      subsets: [
        {
          addresses: [{ ip: "10.1.0.2", nodeName: "edge-2", hostname: "h2" }, { ip: "10.1.0.1" }],
          notReadyAddresses: [{ ip: "10.1.0.3" }],
          ports: [{ name: "http", port: 8080, protocol: "TCP" }],
        },
      ],
    };
    const legacy = build({ services: [web()], endpoints: [endpoints] }).table;
    expect(legacy.byKey["default/web:80/TCP"]!.endpoints).toEqual([
      { ip: "10.1.0.1", port: 8080, node: "", ready: true, hostname: "", zone: "" },
      { ip: "10.1.0.2", port: 8080, node: "edge-2", ready: true, hostname: "h2", zone: "" },
    ]);
    const both = build({
      services: [web()],
      endpoints: [endpoints],
      slices: [slice("web", [{ name: "http", port: 9090 }], [ep("10.2.0.1")])],
    }).table;
    expect(both.byKey["default/web:80/TCP"]!.endpoints.map((e) => `${e.ip}:${e.port}`)).toEqual(["10.2.0.1:9090"]);
  });

  test("invalid addresses, FQDN slices and garbage entries are skipped without throwing", () => {
    const { table } = build({
      services: [web()],
      slices: [
        slice("web", [{ name: "http", port: 8080 }, null, { name: "http", port: "x" }], [
          null,
          42,
          { addresses: "10.0.0.1" },
          { addresses: ["not-an-ip"] },
          { addresses: ["10.0.0.256"] },
          { addresses: ["fd00::1"] },
          ep("10.0.0.7"),
        ]),
        slice("web", [{ name: "http", port: 8080 }], [{ addresses: ["db.example.com"] }], "default", { addressType: "FQDN" }),
        slice("web", "nope" as any, "nope" as any),
      ],
    });
    expect(table.byKey["default/web:80/TCP"]!.endpoints.map((e) => e.ip)).toEqual(["10.0.0.7", "fd00::1"]);
  });
});

describe("compile: services", () => {
  test("headless services get a record with their endpoints and no listener", () => {
    const { table } = build({
      services: [
        svc("db", { clusterIP: "None", ports: [{ name: "pg", port: 5432 }] }),
        svc("raw", { clusterIP: "None" }),
      ],
      slices: [
        slice("db", [{ name: "pg", port: 5432 }], [ep("10.0.0.2", { ready: true }, "n", { hostname: "db-1" }), ep("10.0.0.1")]),
        slice("raw", [], [ep("10.0.1.1")]),
      ],
    });
    expect(table.ports).toEqual([]);
    const db = table.services.find((s) => s.name === "db")!;
    expect(db.type).toBe("Headless");
    expect(db.clusterIPs).toEqual([]);
    expect(db.ports).toEqual([{ name: "pg", port: 5432, protocol: "TCP" }]);
    expect(db.endpoints.map((e) => `${e.ip}:${e.port}:${e.hostname}`)).toEqual(["10.0.0.1:5432:", "10.0.0.2:5432:db-1"]);
    const raw = table.services.find((s) => s.name === "raw")!;
    expect(raw.endpoints.map((e) => `${e.ip}:${e.port}`)).toEqual(["10.0.1.1:0"]);
  });

  test("ExternalName services get a record with the external name and no listener", () => {
    const { table } = build({
      services: [svc("ext", { type: "ExternalName", externalName: "db.example.com", ports: [{ port: 5432 }] })],
    });
    expect(table.ports).toEqual([]);
    expect(table.services[0]).toMatchObject({ name: "ext", type: "ExternalName", externalName: "db.example.com", clusterIPs: [] });
  });

  test("SCTP ports are refused with a warning; the service's other ports still get listeners", () => {
    const { table, warnings } = build({
      services: [svc("sig", { clusterIP: "10.96.0.20", ports: [{ name: "s", port: 3868, protocol: "SCTP" }, { name: "t", port: 3868 }] })],
    });
    expect(table.ports.map((p) => p.key)).toEqual(["default/sig:3868/TCP"]);
    expect(warnings.some((w) => w.includes("default/sig") && w.includes("SCTP"))).toBe(true);
  });

  test("dual-stack clusterIPs, nodePort, externalIPs and type are carried", () => {
    const { table } = build({
      services: [
        svc("np", {
          type: "NodePort",
          clusterIP: "10.96.0.30",
          clusterIPs: ["10.96.0.30", "fd00:96::30"],
          externalIPs: ["192.0.2.10"],
          ports: [{ name: "http", port: 80, nodePort: 30080 }],
        }),
        svc("nocluster", { ports: [{ port: 81 }] }),
      ],
    });
    const np = table.byKey["default/np:80/TCP"]!;
    expect(np.clusterIPs).toEqual(["10.96.0.30", "fd00:96::30"]);
    expect(np.nodePort).toBe(30080);
    expect(np.externalIPs).toEqual(["192.0.2.10"]);
    expect(table.services.find((s) => s.name === "np")!.type).toBe("NodePort");
    const bare = table.byKey["default/nocluster:81/TCP"]!;
    expect(bare.clusterIPs).toEqual([]);
    expect(bare.portName).toBe("");
    expect(bare.nodePort).toBe(0);
  });

  test("session affinity ClientIP with default, custom and out-of-range timeouts", () => {
    const { table, warnings } = build({
      services: [
        svc("a", { sessionAffinity: "ClientIP", ports: [{ port: 80 }] }),
        svc("b", { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } }, ports: [{ port: 80 }] }),
        svc("c", { sessionAffinity: "ClientIP", sessionAffinityConfig: { clientIP: { timeoutSeconds: -5 } }, ports: [{ port: 80 }] }),
        svc("d", { sessionAffinity: "None", ports: [{ port: 80 }] }),
      ],
    });
    expect(table.byKey["default/a:80/TCP"]!.affinity).toEqual({ clientIP: true, timeoutSeconds: 10800 });
    expect(table.byKey["default/b:80/TCP"]!.affinity).toEqual({ clientIP: true, timeoutSeconds: 60 });
    expect(table.byKey["default/c:80/TCP"]!.affinity).toEqual({ clientIP: true, timeoutSeconds: 10800 });
    expect(table.byKey["default/d:80/TCP"]!.affinity.clientIP).toBe(false);
    expect(warnings.some((w) => w.includes("default/c") && w.includes("timeoutSeconds"))).toBe(true);
  });

  test("broken services are reported, never thrown", () => {
    const { table, warnings } = build({
      services: [
        svc("nospec", undefined),
        svc("badports", { ports: "80" }),
        svc("badport", { ports: [{ port: 0 }, { port: 70000 }, { port: "80" }, null, { port: 80 }, { port: 80 }] }),
        svc("weird", { type: "Bogus", ports: [{ port: 80 }] }),
        svc("Bad_Name", { ports: [{ port: 80 }] }),
        svc("a:b", { ports: [{ port: 80 }] }),
        { kind: "Service", metadata: { name: "weird" }, spec: { ports: [{ port: 81 }] } },
      ],
    });
    expect(table.ports.map((p) => p.key)).toEqual(["default/badport:80/TCP", "default/weird:80/TCP"]);
    expect(table.services.map((s) => s.name)).toEqual(["badport", "badports", "weird"]);
    expect(warnings.length).toBeGreaterThanOrEqual(9);
    expect(warnings.some((w) => w.includes("Bad_Name") && w.includes("DNS labels"))).toBe(true);
    expect(warnings.some((w) => w.includes("default/weird is defined twice"))).toBe(true);
  });

  test("ports and services come out sorted by key even where numeric and string order differ", () => {
    const { table } = build({
      services: [
        svc("svc-10", { ports: [{ port: 80 }] }),
        svc("svc-1", { ports: [{ port: 9 }, { port: 80 }, { port: 80, protocol: "UDP" }] }),
        svc("svc-1-x", { ports: [{ port: 80 }] }),
        svc("a", { ports: [{ port: 1 }] }, undefined, "kube-system"),
        svc("a", { ports: [{ port: 1 }] }, undefined, "kube"),
      ],
    });
    const keys = table.ports.map((p) => p.key);
    expect(keys).toEqual([...keys].sort());
    expect(keys.length).toBe(7);
    for (const p of table.ports) expect(table.byKey[p.key]).toBe(p);
    expect(table.services.map((s) => `${s.namespace}/${s.name}`)).toEqual([
      "default/svc-1",
      "default/svc-1-x",
      "default/svc-10",
      "kube/a",
      "kube-system/a",
    ]);
  });

  test("version and compile time come from the caller", () => {
    const { table } = build({});
    expect(table.version).toBe(7);
    expect(table.compiledAt).toBe(1234);
  });
});

describe("compile: service filter label", () => {
  const services = [
    svc("plain", { ports: [{ port: 80 }] }),
    svc("labelled", { ports: [{ port: 80 }] }, { "service.edgemesh.kubeedge.io/service-proxy-name": "" }),
    svc("other", { ports: [{ port: 80 }] }, { "service.kubernetes.io/service-proxy-name": "x" }),
  ];

  test("FilterIfLabelExists skips services carrying the label (any value); DNS records stay", () => {
    const { table } = build({ services }, { serviceFilterMode: "FilterIfLabelExists" });
    expect(table.ports.map((p) => p.name)).toEqual(["other", "plain"]);
    expect(table.services.map((s) => s.name)).toEqual(["labelled", "other", "plain"]);
  });

  test("FilterIfLabelDoesNotExists proxies only services carrying the label", () => {
    const { table } = build({ services }, { serviceFilterMode: "FilterIfLabelDoesNotExists" });
    expect(table.ports.map((p) => p.name)).toEqual(["labelled"]);
    expect(table.services.length).toBe(3);
  });
});

describe("compile: DestinationRule policy", () => {
  const withRule = (spec: any, apiVersion?: string) => build({ services: [web()], rules: [rule("web", spec, apiVersion)] });
  const lb = (loadBalancer: any) => ({ trafficPolicy: { loadBalancer } });

  test("supported policies", () => {
    expect(build({ services: [web()] }).table.ports[0]!.policy).toEqual({ kind: "ROUND_ROBIN" });
    expect(withRule(lb({ simple: "ROUND_ROBIN" })).table.ports[0]!.policy).toEqual({ kind: "ROUND_ROBIN" });
    expect(withRule(lb({ simple: "RANDOM" })).table.ports[0]!.policy).toEqual({ kind: "RANDOM" });
    expect(withRule(lb({ consistentHash: { useSourceIp: true } })).table.ports[0]!.policy).toEqual({
      kind: "CONSISTENT_HASH_SOURCE_IP",
    });
    expect(withRule(lb({ consistentHash: { httpHeaderName: "X-User-ID" } })).table.ports[0]!.policy).toEqual({
      kind: "CONSISTENT_HASH_HEADER",
      header: "x-user-id",
    });
  });

  test("a rule for another service or namespace does not apply", () => {
    const other: KubeObject = { ...rule("web", lb({ simple: "RANDOM" })), metadata: { name: "web", namespace: "prod" } };
    const { table } = build({ services: [web()], rules: [other, rule("api", lb({ simple: "RANDOM" }))] });
    expect(table.ports[0]!.policy.kind).toBe("ROUND_ROBIN");
  });

  const bad: [string, any, string?][] = [
    ["no spec", undefined],
    ["spec is a string", "RANDOM"],
    ["no trafficPolicy (edgemesh#371)", { host: "web" }],
    ["trafficPolicy null", { trafficPolicy: null }],
    ["no loadBalancer (edgemesh#472)", { trafficPolicy: { connectionPool: {} } }],
    ["loadBalancer is a list", lb([{ simple: "RANDOM" }])],
    ["empty loadBalancer", lb({})],
    ["LEAST_CONN", lb({ simple: "LEAST_CONN" })],
    ["LEAST_REQUEST", lb({ simple: "LEAST_REQUEST" })],
    ["PASSTHROUGH (edgemesh#463)", lb({ simple: "PASSTHROUGH" })],
    ["lower-case random", lb({ simple: "random" })],
    ["simple is a number", lb({ simple: 2 })],
    ["simple and consistentHash", lb({ simple: "RANDOM", consistentHash: { useSourceIp: true } })],
    ["consistentHash is a string", lb({ consistentHash: "useSourceIp" })],
    ["consistentHash without key", lb({ consistentHash: { minimumRingSize: 1024 } })],
    ["httpCookie", lb({ consistentHash: { httpCookie: { name: "id", ttl: "0s" } } })],
    ["httpQueryParameterName", lb({ consistentHash: { httpQueryParameterName: "u" } })],
    ["useSourceIp false", lb({ consistentHash: { useSourceIp: false } })],
    ["useSourceIp string", lb({ consistentHash: { useSourceIp: "true" } })],
    ["empty header name", lb({ consistentHash: { httpHeaderName: "  " } })],
    ["header name is a number", lb({ consistentHash: { httpHeaderName: 42 } })],
    ["two hash keys", lb({ consistentHash: { httpHeaderName: "x", useSourceIp: true } })],
    ["foreign apiVersion", lb({ simple: "RANDOM" }), "example.com/v1"],
  ];
  for (const [name, spec, apiVersion] of bad) {
    test(`falls back to ROUND_ROBIN with a warning: ${name}`, () => {
      const { table, warnings } = withRule(spec, apiVersion);
      expect(table.ports[0]!.policy).toEqual({ kind: "ROUND_ROBIN" });
      expect(warnings.length).toBe(1);
      expect(warnings[0]).toContain("DestinationRule default/web");
    });
  }
});

describe("compile: output", () => {
  test("the whole table is deeply frozen", () => {
    const { table } = build({
      services: [web({ sessionAffinity: "ClientIP", externalIPs: ["192.0.2.1"] }), svc("db", { clusterIP: "None", ports: [{ port: 5432 }] })],
      slices: [slice("web", [{ name: "http", port: 8080 }], [ep("10.0.0.1")]), slice("db", [{ port: 5432 }], [ep("10.0.0.2")])],
      rules: [rule("web", { trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: "X" } } } })],
    });
    let objects = 0;
    const walk = (v: unknown): void => {
      if (v === null || typeof v !== "object") return;
      objects++;
      expect(Object.isFrozen(v)).toBe(true);
      for (const k of Object.keys(v)) walk((v as any)[k]);
    };
    walk(table);
    expect(objects).toBeGreaterThan(15);
    expect(() => {
      (table.ports[0]!.endpoints as any).push({});
    }).toThrow();
    expect(() => {
      (table.byKey as any)["x"] = 1;
    }).toThrow();
  });

  test("compiling the same snapshot twice gives equal tables", () => {
    const objs = {
      services: [web(), svc("db", { clusterIP: "None", ports: [{ port: 5432 }] })],
      slices: [slice("web", [{ name: "http", port: 8080 }], [ep("10.0.0.2"), ep("10.0.0.1")])],
    };
    expect(build(objs).table).toEqual(build(objs).table);
  });
});

describe("createCompiler: reuse across compiles", () => {
  const opts = (warnings: string[] = []): CompileOptions => ({ serviceFilterMode: "FilterIfLabelExists", warn: (m) => warnings.push(m) });
  const webSlice = slice("web", [{ name: "http", port: 8080 }], [ep("10.0.0.1")]);

  test("unchanged services keep their objects; a changed slice rebuilds only its service", () => {
    const store = createObjectStore();
    store.replace({ Service: [web(), svc("api", { ports: [{ name: "http", port: 81 }] })], EndpointSlice: [webSlice] });
    const compiler = createCompiler(opts());
    const t1 = compiler.compile(store.snapshot(), 1, 0);
    store.upsert("EndpointSlice", slice("api", [{ name: "http", port: 9090 }], [ep("10.0.1.1")]));
    const t2 = compiler.compile(store.snapshot(), 2, 0);
    expect(t2.byKey["default/web:80/TCP"]).toBe(t1.byKey["default/web:80/TCP"]!);
    expect(t2.services.find((r) => r.name === "web")).toBe(t1.services.find((r) => r.name === "web")!);
    expect(t2.byKey["default/api:81/TCP"]).not.toBe(t1.byKey["default/api:81/TCP"]!);
    expect(t2.byKey["default/api:81/TCP"]!.endpoints.map((e) => e.ip)).toEqual(["10.0.1.1"]);
    expect(t2.version).toBe(2);
  });

  test("a new DestinationRule, a removed slice and a relabelled service all take effect", () => {
    const store = createObjectStore();
    const legacy: KubeObject = {
      kind: "Endpoints",
      metadata: { name: "web", namespace: "default" },
      subsets: [{ addresses: [{ ip: "10.9.0.1" }], ports: [{ name: "http", port: 7000 }] }],
    };
    store.replace({ Service: [web()], EndpointSlice: [webSlice], Endpoints: [legacy] });
    const compiler = createCompiler(opts());
    compiler.compile(store.snapshot(), 1, 0);
    store.upsert("DestinationRule", rule("web", { trafficPolicy: { loadBalancer: { simple: "RANDOM" } } }));
    expect(compiler.compile(store.snapshot(), 2, 0).byKey["default/web:80/TCP"]!.policy.kind).toBe("RANDOM");
    store.remove("EndpointSlice", `default/${webSlice.metadata.name}`);
    expect(compiler.compile(store.snapshot(), 3, 0).byKey["default/web:80/TCP"]!.endpoints.map((e) => e.port)).toEqual([7000]);
    store.upsert("Service", web({}));
    store.upsert("Service", { ...web(), metadata: { name: "web", namespace: "default", labels: { "service.edgemesh.kubeedge.io/service-proxy-name": "x" } } });
    expect(compiler.compile(store.snapshot(), 4, 0).ports).toEqual([]);
  });

  test("a change only to kinds compile does not read reuses the whole table content", () => {
    const warnings: string[] = [];
    const store = createObjectStore();
    store.replace({ Service: [web(), svc("sig", { ports: [{ port: 1, protocol: "SCTP" }] })], EndpointSlice: [webSlice] });
    const compiler = createCompiler(opts(warnings));
    const t1 = compiler.compile(store.snapshot(), 1, 10);
    store.upsert("Node", { kind: "Node", metadata: { name: "edge-1" } });
    const t2 = compiler.compile(store.snapshot(), 2, 20);
    expect(t2.ports).toBe(t1.ports);
    expect(t2.services).toBe(t1.services);
    expect([t2.version, t2.compiledAt]).toEqual([2, 20]);
    expect(Object.isFrozen(t2)).toBe(true);
    expect(warnings.filter((w) => w.includes("SCTP")).length).toBe(2);
  });

  test("warnings of reused services are reported on every compile", () => {
    const warnings: string[] = [];
    const store = createObjectStore();
    store.replace({ Service: [svc("sig", { ports: [{ port: 1, protocol: "SCTP" }] })] });
    const compiler = createCompiler(opts(warnings));
    compiler.compile(store.snapshot(), 1, 0);
    compiler.compile(store.snapshot(), 2, 0);
    expect(warnings.filter((w) => w.includes("SCTP")).length).toBe(2);
  });

  test("after any sequence of changes the result equals a cold compile", () => {
    const store = createObjectStore();
    const compiler = createCompiler(opts());
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let step = 0; step < 200; step++) {
      const n = rnd(8);
      const name = `s${n}`;
      switch (rnd(6)) {
        case 0:
          store.upsert("Service", svc(name, { clusterIP: n % 3 === 0 ? "None" : `10.96.0.${n}`, ports: [{ name: "p", port: 80 + rnd(3) }] }));
          break;
        case 1:
          store.remove("Service", `default/${name}`);
          break;
        case 2:
          store.upsert("EndpointSlice", {
            ...slice(name, [{ name: "p", port: 8000 + rnd(3) }], [ep(`10.1.${n}.${rnd(4)}`), ep(`10.1.${n}.${rnd(4)}`, { ready: rnd(2) === 0, serving: true, terminating: true })]),
            metadata: { name: `${name}-${rnd(2)}`, namespace: "default", labels: { "kubernetes.io/service-name": name } },
          });
          break;
        case 3:
          store.remove("EndpointSlice", `default/${name}-${rnd(2)}`);
          break;
        case 4:
          store.upsert("DestinationRule", rule(name, { trafficPolicy: { loadBalancer: { simple: rnd(2) ? "RANDOM" : "LEAST_CONN" } } }));
          break;
        default:
          store.upsert("Endpoints", {
            kind: "Endpoints",
            metadata: { name, namespace: "default" },
            subsets: [{ addresses: [{ ip: `10.2.${n}.${rnd(4)}` }], ports: [{ name: "p", port: 7000 }] }],
          });
      }
      const snapshot = store.snapshot();
      expect(compiler.compile(snapshot, step, 0)).toEqual(compile(snapshot, opts(), step, 0));
    }
  });
});
