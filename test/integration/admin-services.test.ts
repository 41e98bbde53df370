// /peers/services, the per service port section of /peers (issue 11: per-peer and per-service
// limits shown with their current use, so an operator sees a limit being hit before users do).
// A real proxy with a per-port cap of 2, real TCP connections and UDP flows through it, the
// admin server reading the same metrics registry.

import { afterAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { servicesJson, startAdminServer, type ServiceUse } from "../../src/admin/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { echoServer, runCleanups, startProxy } from "./proxy-support.ts";

const cleanups: (() => void)[] = [];
afterAll(() => runCleanups(cleanups));

async function udpEcho(): Promise<number> {
  const s = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    socket: { data: (sock, buf, port, addr) => void sock.send(buf, port, addr) },
  });
  cleanups.push(() => s.close());
  return s.port;
}

/** Connect, send a byte, wait for the echo: a connection the proxy holds open. */
async function hold(port: number): Promise<Socket> {
  const got = Promise.withResolvers<void>();
  const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: () => got.resolve(), error: () => got.resolve() } });
  s.write("x");
  await Promise.race([got.promise, Bun.sleep(3000)]);
  cleanups.push(() => s.terminate());
  return s;
}

/** Connect, send, wait until the proxy closes us (refused at the cap) or 3 s. */
async function refused(port: number): Promise<void> {
  const closed = Promise.withResolvers<void>();
  const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, close: () => closed.resolve(), error: () => closed.resolve() } });
  s.write("x");
  await Promise.race([closed.promise, Bun.sleep(3000)]);
  s.terminate();
}

describe("/peers/services: each service port's use against its limit", () => {
  test("a capped TCP port shows its open connections, the cap, the refusals and near; UDP its flows with no per-port cap", async () => {
    const echo = echoServer();
    cleanups.push(() => echo.stop(true));
    const udpPort = await udpEcho();
    const log = createMemoryLogger();
    const h = startProxy(
      [
        { name: "capped", endpoints: [{ port: echo.port }] },
        { name: "idle", port: 8080, endpoints: [{ port: echo.port }] },
        { name: "dns", port: 53, protocol: "UDP", endpoints: [{ port: udpPort }] },
      ],
      { maxConnectionsPerPort: 2, log },
    );
    cleanups.push(() => h.proxy.stop());
    const admin = startAdminServer({
      address: "127.0.0.1:0",
      table: h.table,
      listeners: () => h.proxy.listeners(),
      readiness: () => ({ ready: true, reasons: [] }),
      metrics: h.metrics,
    });
    cleanups.push(() => admin.stop());
    const view = async (): Promise<ServiceUse[]> => {
      const r = await fetch(`http://127.0.0.1:${admin.port}/peers/services`);
      expect(r.status).toBe(200);
      return (await r.json()) as ServiceUse[];
    };

    const capped = await h.addr("capped");
    for (let i = 0; i < 2; i++) await hold(capped.port);
    for (let i = 0; i < 3; i++) await refused(capped.port);
    const dns = await h.addr("dns", 53, "UDP");
    const flows: { close(): void }[] = [];
    for (let i = 0; i < 3; i++) {
      const got = Promise.withResolvers<void>();
      const c = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data: () => got.resolve() } });
      cleanups.push(() => c.close());
      c.send("q", dns.port, "127.0.0.1");
      await Promise.race([got.promise, Bun.sleep(3000)]);
      flows.push(c);
    }

    const v = await view();
    expect(v.map((s) => s.service)).toEqual(["default/capped:80/TCP", "default/dns:53/UDP", "default/idle:8080/TCP"]);
    expect(v[0]).toEqual({ service: "default/capped:80/TCP", namespace: "default", name: "capped", port: 80, protocol: "TCP", active: 2, max: 2, limitHits: 3, near: true });
    expect(v[1]).toMatchObject({ protocol: "UDP", active: 3, max: 0, limitHits: 0, near: false });
    expect(v[2]).toMatchObject({ active: 0, max: 2, limitHits: 0, near: false });
    // The same figures /metrics shows.
    const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
    expect(text).toContain('edgemesh_proxy_service_active{namespace="default",port="80",protocol="TCP",service="capped"} 2');
    expect(text).toContain('edgemesh_proxy_service_failures_total{namespace="default",port="80",protocol="TCP",reason="limit",service="capped"} 3');
    // Three refusals at the port's cap: one log line (one per service port per minute).
    expect(log.lines.filter((l) => l.includes("connection limit of the service port reached")).length).toBe(1);
  });

  test("label values are read back as rendered, escapes included; series of other families are ignored", () => {
    const m = createMetrics();
    m.gaugeFn("proxy_service_active", "h", () => 7, { namespace: "ns", service: 'we"ird', port: "81", protocol: "TCP" });
    m.gaugeFn("proxy_service_active_max", "h", () => 8, { protocol: "TCP" });
    m.counter("proxy_service_failures_total", "h", { namespace: "ns", service: 'we"ird', port: "81", protocol: "TCP", reason: "limit" }).value = 4;
    m.counter("proxy_service_connections_total", "h", { namespace: "ns", service: "other", port: "82", protocol: "TCP" }).value = 1;
    expect(servicesJson(m.snapshot())).toEqual([{ service: 'ns/we"ird:81/TCP', namespace: "ns", name: 'we"ird', port: 81, protocol: "TCP", active: 7, max: 8, limitHits: 4, near: true }]);
  });
});
