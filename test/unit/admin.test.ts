import { afterAll, describe, expect, test } from "bun:test";
import { parseHostPort, ROUTES, routesJson, startAdminServer, startMetricsListener } from "../../src/admin/index.ts";
import { deepFreeze, type RouteTable, type ServicePort } from "../../src/control/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

const port: ServicePort = {
  key: "default/web:80/TCP",
  namespace: "default",
  name: "web",
  portName: "http",
  port: 80,
  protocol: "TCP",
  clusterIPs: ["10.96.0.10"],
  nodePort: 0,
  externalIPs: [],
  policy: { kind: "CONSISTENT_HASH_HEADER", header: "x-user" },
  affinity: { clientIP: false, timeoutSeconds: 10800 },
  endpoints: [{ ip: "10.244.1.2", port: 8080, node: "node1", ready: true, hostname: "", zone: "" }],
};
const table: RouteTable = deepFreeze({
  version: 7,
  compiledAt: 0,
  ports: [port],
  byKey: { [port.key]: port },
  services: [],
});
const listeners = new Map([[port.key, { host: "169.254.96.16", port: 40001 }]]);

describe("admin endpoint", () => {
  const metrics = createMetrics();
  metrics.counter("tcp_connections_total", "accepted connections").value = 3;
  let ready = false;
  const admin = startAdminServer({
    address: "127.0.0.1:0",
    table: { current: () => table, subscribe: () => () => {} },
    listeners: () => listeners,
    readiness: () => ({ ready, reasons: ready ? [] : ["metadata not synced"] }),
    metrics,
  });
  const base = `http://127.0.0.1:${admin.port}`;
  afterAll(() => admin.stop());

  test("port 0 picks a real port", () => {
    expect(admin.port).toBeGreaterThan(0);
  });

  test("/routes is the documented JSON shape", async () => {
    const body = await (await fetch(`${base}/routes`)).json();
    expect(body).toEqual({
      version: 7,
      services: [
        {
          namespace: "default",
          name: "web",
          port: 80,
          protocol: "TCP",
          clusterIP: "10.96.0.10",
          listen: "169.254.96.16:40001",
          policy: "CONSISTENT_HASH_HEADER(x-user)",
          endpoints: [{ ip: "10.244.1.2", port: 8080, node: "node1" }],
        },
      ],
    });
  });

  test("/readyz says why it is not ready, then 200 once ready", async () => {
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toContain("metadata not synced");
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  test("/metrics is Prometheus text with our prefix", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain("# TYPE edgemesh_tcp_connections_total counter");
    expect(text).toContain("edgemesh_tcp_connections_total 3");
  });

  test("a service port without a listener shows an empty listen address", () => {
    expect(routesJson(table, new Map()).services[0]!.listen).toBe("");
  });

  test("bad HOST:PORT names the option", () => {
    expect(() => parseHostPort("localhost", "--admin")).toThrow('--admin: expected HOST:PORT, got "localhost"');
    expect(parseHostPort("[::1]:53", "--dns")).toEqual({ host: "::1", port: 53 });
    expect(() => parseHostPort("1.2.3.4:70000", "--dns")).toThrow("--dns");
  });
});

describe("metrics listener (modules.edgeTunnel.metricConfig)", () => {
  const metrics = createMetrics();
  metrics.counter("proxy_tcp_accepted_total", "accepted").value = 9;
  const routes = {
    table: { current: () => table, subscribe: () => () => {} },
    listeners: () => listeners,
    readiness: () => ({ ready: true, reasons: [] }),
    metrics,
  };
  const listener = startMetricsListener({ bindAddress: "127.0.0.1", port: 0, ...routes });
  const base = `http://127.0.0.1:${listener.port}`;
  afterAll(() => listener.stop());

  test("serves /metrics as Prometheus text, and the read-only routes", async () => {
    const m = await fetch(`${base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.headers.get("content-type")).toStartWith("text/plain; version=0.0.4");
    expect(await m.text()).toContain("edgemesh_proxy_tcp_accepted_total 9");
    for (const path of ["/healthz", "/readyz", "/routes"]) expect((await fetch(`${base}${path}`)).status).toBe(200);
    expect((await fetch(`${base}/peers`)).status).toBe(404); // no tunnel given
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
  });

  test("only GET and HEAD: anything else is refused with 405", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      const r = await fetch(`${base}/metrics`, { method });
      expect(r.status).toBe(405);
      expect(r.headers.get("allow")).toBe("GET, HEAD");
    }
    expect((await fetch(`${base}/healthz`, { method: "HEAD" })).status).toBe(200);
  });

  test("every route it serves is marked read-only (a route that changes state must not be)", () => {
    expect(Object.entries(ROUTES).filter(([, r]) => r.readOnly).map(([p]) => p).sort()).toEqual(["/healthz", "/metrics", "/peers", "/peers/services", "/readyz", "/routes"]);
  });

  test("a taken port names the config key and the address", () => {
    expect(() => startMetricsListener({ bindAddress: "127.0.0.1", port: listener.port, ...routes })).toThrow(
      `modules.edgeTunnel.metricConfig: cannot listen on 127.0.0.1:${listener.port}`,
    );
  });
});
