// What the proxy tells an operator about its data path: per service port series (bounded, and
// gone with the port), connect-time histograms, and warnings naming service, endpoint and reason
// for failed dials and connections without endpoints, rate-limited so a flood writes one line.

import { afterEach, describe, expect, test } from "bun:test";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { DataPathLog, PortMetricsSet } from "../../src/hotpath/observe.ts";
import { echoServer, makeTable, servicePort, startProxy, type Harness } from "./proxy-support.ts";
import { promtoolCheck } from "../support/promtool.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function harness(...args: Parameters<typeof startProxy>): Harness & { log: ReturnType<typeof createMemoryLogger> } {
  const log = createMemoryLogger();
  const h = startProxy(args[0], { log, ...args[1] });
  cleanups.push(() => h.proxy.stop());
  return Object.assign(h, { log });
}

/** A port nothing listens on. */
function deadPort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** Connect, send a byte, wait until the proxy closes us (or 5 s). */
async function attempt(port: number): Promise<void> {
  const closed = Promise.withResolvers<void>();
  const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, close: () => closed.resolve(), error: () => closed.resolve() } });
  s.write("x");
  await Promise.race([closed.promise, Bun.sleep(5000)]);
  s.terminate();
}

describe("per service port series", () => {
  test("connections and failures are counted per service port, with their reason", async () => {
    const echo = echoServer();
    cleanups.push(() => echo.stop(true));
    const dead = deadPort();
    const h = harness([
      { name: "web", endpoints: [{ port: echo.port }] },
      { name: "half", endpoints: [{ port: dead }, { port: echo.port }] },
    ]);
    const web = await h.addr("web");
    const half = await h.addr("half");
    for (let i = 0; i < 3; i++) {
      const s = await Bun.connect({ hostname: "127.0.0.1", port: web.port, socket: { data() {} } });
      s.end();
    }
    for (let i = 0; i < 2; i++) {
      const got = Promise.withResolvers<void>();
      const s = await Bun.connect({ hostname: "127.0.0.1", port: half.port, socket: { data: () => got.resolve() } });
      s.write("hi");
      await Promise.race([got.promise, Bun.sleep(3000)]);
      s.end();
    }
    const snap = h.metrics.snapshot();
    const l = (svc: string, extra = "") => `{namespace="default",port="80",protocol="TCP",${extra}service="${svc}"}`;
    expect(snap["proxy_service_connections_total" + l("web")]).toBe(3);
    expect(snap["proxy_service_connections_total" + l("half")]).toBe(2);
    // Round robin sends connections to the dead endpoint first, then they fail over: every
    // failed dial of the agent was on "half".
    expect(snap["proxy_service_failures_total" + l("half", 'reason="dial_error",')]).toBeGreaterThanOrEqual(1);
    expect(snap["proxy_service_failures_total" + l("half", 'reason="dial_error",')]).toBe(snap['proxy_tcp_dial_failures_total{reason="error"}']!);
    expect(snap["proxy_service_failures_total" + l("web", 'reason="dial_error",')]).toBe(0);
    // Every successful dial is one connect-time observation on the local path.
    expect(snap['proxy_connect_duration_seconds_count{path="local"}']).toBe(5);
    expect(snap['proxy_connect_duration_seconds_count{path="remote"}']).toBe(0);
    const r = await promtoolCheck(h.metrics.render());
    expect(r.output).toBe("");
  });

  test("each port's current use is shown beside its limit, and a limit hit is one log line a minute", async () => {
    const echo = echoServer();
    cleanups.push(() => echo.stop(true));
    const h = harness([{ name: "capped", endpoints: [{ port: echo.port }] }], { maxConnectionsPerPort: 2 });
    const { port } = await h.addr("capped");
    const active = () => Object.entries(h.metrics.snapshot()).find(([k]) => k.startsWith("proxy_service_active{") && k.includes('service="capped"'))?.[1];
    const held: Awaited<ReturnType<typeof Bun.connect>>[] = [];
    for (let i = 0; i < 2; i++) {
      const got = Promise.withResolvers<void>();
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: () => got.resolve() } });
      s.write("x");
      await Promise.race([got.promise, Bun.sleep(3000)]);
      held.push(s);
    }
    expect(active()).toBe(2);
    expect(h.metrics.snapshot()['proxy_service_active_max{protocol="TCP"}']).toBe(2);
    for (let i = 0; i < 3; i++) await attempt(port); // refused at the cap
    const lines = h.log.lines.filter((l) => l.includes("connection limit of the service port reached"));
    expect(lines.length).toBe(1);
    expect(lines[0]).toContain("capped");
    for (const s of held) s.end();
    for (let i = 0; i < 200 && active() !== 0; i++) await Bun.sleep(10);
    expect(active()).toBe(0);
  });

  test("limit lines: one per service port, and one for the agent, per minute; the next says how many were not logged", () => {
    let now = 0;
    const log = createMemoryLogger({ format: "json" });
    const d = new DataPathLog(log, createMetrics(), { now: () => now });
    for (let i = 0; i < 3; i++) d.connectionLimit("default/a:80/TCP", true, 2);
    d.connectionLimit("default/b:80/TCP", true, 2);
    d.connectionLimit("default/a:80/TCP", false, 100);
    d.flush(); // no summary line of its own
    expect(log.lines.length).toBe(3);
    now = 59_999;
    d.connectionLimit("default/a:80/TCP", true, 2);
    expect(log.lines.length).toBe(3);
    now = 60_000;
    d.connectionLimit("default/a:80/TCP", true, 2);
    expect(log.lines.length).toBe(4);
    const last = JSON.parse(log.lines[3]!);
    expect(last.service).toBe("default/a:80/TCP");
    expect(last.maxConnectionsPerPort).toBe(2);
    expect(last.notLogged).toBe(3);
  });

  test("a port that leaves the table takes its series with it", async () => {
    const echo = echoServer();
    cleanups.push(() => echo.stop(true));
    const h = harness([{ name: "gone", endpoints: [{ port: echo.port }] }, { name: "stays", endpoints: [{ port: echo.port }] }]);
    await h.addr("gone");
    expect(h.metrics.render()).toContain('service="gone"');
    h.table.publish(makeTable([{ name: "stays", endpoints: [{ port: echo.port }] }]));
    expect(h.metrics.render()).not.toContain('service="gone"');
    expect(h.metrics.render()).toContain('service="stays"');
  });

  test("past the budget, ports share one overflow series per protocol; a freed slot is reused", () => {
    const m = createMetrics();
    const set = new PortMetricsSet(m, 2);
    const sp = (name: string) => servicePort({ name, endpoints: [] });
    const a = set.acquire(sp("a"));
    set.acquire(sp("b"));
    const c = set.acquire(sp("c"));
    const d = set.acquire(sp("d"));
    expect(c).toBe(d);
    c.connections.value++;
    expect(m.snapshot()['proxy_service_connections_total{namespace="_overflow",port="0",protocol="TCP",service="_overflow"}']).toBe(1);
    expect(m.families_().find((f) => f.name === "edgemesh_proxy_service_connections_total")!.series).toBe(3);
    set.release(sp("a"));
    set.release(sp("c")); // held no slot of its own: nothing to remove
    expect(set.acquire(sp("e"))).not.toBe(a);
    expect(m.render()).toContain('service="e"');
    expect(m.render()).not.toContain('service="a"');
  });
});

describe("data-path warnings", () => {
  test("a failed dial is a warning naming service, endpoint and reason", async () => {
    const dead = deadPort();
    const echo = echoServer();
    cleanups.push(() => echo.stop(true));
    const h = harness([{ name: "half", endpoints: [{ port: dead }, { port: echo.port }] }]);
    const { port } = await h.addr("half");
    const got = Promise.withResolvers<void>();
    const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data: () => got.resolve() } });
    s.write("x");
    await Promise.race([got.promise, Bun.sleep(3000)]);
    s.end();
    const warn = h.log.lines.filter((l) => l.includes(" WARN ") && l.includes("dial failed"));
    expect(warn).toHaveLength(1);
    expect(warn[0]).toContain("service=default/half:80/TCP");
    expect(warn[0]).toContain(`endpoint=127.0.0.1:${dead}`);
    expect(warn[0]).toMatch(/reason=\S+/);
    expect(warn[0]).toMatch(/ECONNREFUSED|refused/i);
  });

  test("a service without endpoints warns once, however many clients try", async () => {
    const h = harness([{ name: "empty", endpoints: [] }]);
    const { port } = await h.addr("empty");
    await Promise.all(Array.from({ length: 20 }, () => attempt(port)));
    const lines = h.log.lines.filter((l) => l.includes("no endpoints"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("service=default/empty:80/TCP");
    expect(lines[0]).toContain('reason="no ready endpoints"');
    expect(h.metrics.snapshot()['proxy_service_failures_total{namespace="default",port="80",protocol="TCP",reason="no_endpoint",service="empty"}']).toBe(20);
    expect(h.metrics.snapshot()["log_suppressed_total"]).toBe(19);
  }, 20_000);

  test("a flood of failing dials to one endpoint writes one warning for it", async () => {
    const dead = deadPort();
    const h = harness([{ name: "dead", endpoints: [{ port: dead }] }]);
    const { port } = await h.addr("dead");
    await Promise.all(Array.from({ length: 30 }, () => attempt(port)));
    const dial = h.log.lines.filter((l) => l.includes("dial failed"));
    expect(dial).toHaveLength(1);
    // 30 clients x 4 attempts (first try + backoff rounds) failed; all but one held back.
    expect(h.metrics.snapshot()['proxy_service_failures_total{namespace="default",port="80",protocol="TCP",reason="dial_error",service="dead"}']).toBe(120);
    expect(h.metrics.snapshot()["log_suppressed_total"]).toBe(119 + 29);
  }, 30_000);
});

describe("tunnel failures", () => {
  test("a far agent that answered FAILED is a dial failure; anything else means the peer was not reached", async () => {
    const log = createMemoryLogger();
    const d = new DataPathLog(log, createMetrics(), { now: () => 0 });
    const ep = { ip: "10.244.2.10", port: 8080, node: "n2", ready: true, hostname: "", zone: "" };
    d.dialFailed("default/web:80/TCP", ep, true, Object.assign(new Error("n2 answered FAILED for tcp 10.244.2.10:8080"), { code: "PROXY_REFUSED" }));
    d.dialFailed("default/web:80/TCP", ep, true, Object.assign(new Error("no address known for node n2"), { code: "NO_PEER" }));
    expect(log.lines).toHaveLength(2);
    expect(log.lines[0]).toContain("dial failed service=default/web:80/TCP endpoint=10.244.2.10:8080");
    expect(log.lines[0]).toContain("node=n2");
    expect(log.lines[1]).toContain("tunnel peer unreachable service=default/web:80/TCP endpoint=10.244.2.10:8080");
    expect(log.lines[1]).toContain('reason="NO_PEER: no address known for node n2" node=n2');
  });
});
