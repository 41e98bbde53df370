// Two agents in one process on loopback, each a real tunnel (libp2p, PSK, Noise, yamux) plus a
// real proxy: a client of agent A reaches endpoints that the table places on node B, through
// A's TunnelDialer, B's inbound handler and B's splice into the local endpoint.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener, udp } from "bun";
import { createHash, randomBytes } from "node:crypto";
import { createInboundHandler, createTunnelDialer, type InboundHandler } from "../../src/hotpath/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import type { MetricsRegistry } from "../../src/metrics/index.ts";
import type { Tunnel } from "../../src/tunnel/index.ts";
import { stopAllTunnels, testTunnel } from "../support/tunnels.ts";
import { makeTable, startProxy, type Harness, type PortSpec } from "./proxy-support.ts";

const MB = 1024 * 1024;

interface Agent {
  name: string;
  tunnel: Tunnel;
  metrics: MetricsRegistry;
  h: Harness;
  inbound: InboundHandler;
}

// Run in reverse at the end: the tunnels stop last, after the proxies and servers that use them.
const closers: (() => unknown)[] = [stopAllTunnels];
let a: Agent;
let b: Agent;
let echo: TCPSocketListener<unknown>;
let udpEcho: udp.Socket<"uint8array">;
let http: ReturnType<typeof Bun.serve>;
let dead: number;

async function agent(name: string, specs: PortSpec[], udpIdleTimeoutMs: number): Promise<Agent> {
  const { tunnel, metrics } = testTunnel(name);
  await tunnel.start();
  const log = createMemoryLogger();
  const remote = createTunnelDialer({ tunnel, log, metrics });
  const h = startProxy(specs, { nodeName: name, remote, metrics, udpIdleTimeoutMs });
  closers.push(() => h.proxy.stop());
  const inbound = createInboundHandler({ proxy: h.proxy, table: h.table, nodeName: name, udpIdleTimeoutMs, log, metrics });
  closers.push(() => inbound.stop());
  tunnel.handleProxy(inbound.handle);
  return { name, tunnel, metrics, h, inbound };
}

function metric(m: MetricsRegistry, name: string): number {
  let sum = 0;
  for (const [k, v] of Object.entries(m.snapshot())) if (k === name || k.startsWith(name + "{")) sum += v;
  return sum;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(20);
  }
}

/** A server that hashes what it receives and sends `reply` (honouring backpressure), then FIN. */
function duplexServer(reply: Uint8Array): { listener: TCPSocketListener<unknown>; received: Promise<string> } {
  let done!: (h: string) => void;
  const received = new Promise<string>((r) => (done = r));
  const listener = Bun.listen<{ hash: ReturnType<typeof createHash>; off: number }>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    data: { hash: createHash("sha256"), off: 0 },
    socket: {
      binaryType: "uint8array",
      open(s) {
        s.data = { hash: createHash("sha256"), off: 0 };
        pump(s, reply);
      },
      data: (s, b) => void s.data.hash.update(b),
      drain: (s) => pump(s, reply),
      // Bun reports a FIN that arrives after our own shutdown() as close, not end.
      end: (s) => finish(s.data),
      close: (s) => finish(s.data),
    },
  });
  closers.push(() => listener.stop(true));
  const finish = (d: { hash: ReturnType<typeof createHash>; off: number; done?: boolean }) => {
    if (d.done) return;
    d.done = true;
    done(d.hash.digest("hex"));
  };
  return { listener, received };
}

function pump(s: Socket<{ off: number }>, buf: Uint8Array): void {
  while (s.data.off < buf.length) {
    const n = s.write(buf.subarray(s.data.off, Math.min(buf.length, s.data.off + 256 * 1024)));
    if (n <= 0) return;
    s.data.off += n;
  }
  if (s.data.off === buf.length) {
    s.data.off++;
    s.shutdown();
  }
}

/** Connects, sends `payload` then FIN; resolves with the sha256 of everything received until FIN. */
function duplexClient(port: number, payload: Uint8Array): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    let bytes = 0;
    Bun.connect<{ off: number }>({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      data: { off: 0 },
      socket: {
        binaryType: "uint8array",
        open: (s) => pump(s, payload),
        drain: (s) => pump(s, payload),
        data: (_s, b) => {
          bytes += b.length;
          hash.update(b);
        },
        end: (s) => {
          s.end();
        },
        close: () => resolve({ hash: hash.digest("hex"), bytes }),
        error: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  echo = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      data: (s, d) => void s.write(d),
      end: (s) => void s.end(),
    },
  });
  closers.push(() => echo.stop(true));
  udpEcho = await Bun.udpSocket({
    hostname: "127.0.0.1",
    binaryType: "uint8array",
    socket: { data: (s, buf, port, addr) => void s.send(buf, port, addr), error: () => {} },
  });
  closers.push(() => udpEcho.close());
  http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`hello from node-b ${new URL(req.url).pathname}`) });
  closers.push(() => http.stop(true));
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  dead = l.port;
  l.stop(true);
}, 30_000);

afterAll(async () => {
  for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
});

describe("cross-node splice over a real tunnel (loopback)", () => {
  beforeAll(async () => {
    const onB = (port: number, ip = "127.0.0.1") => ({ ip, port, node: "node-b" });
    const shared: PortSpec[] = [
      { name: "echo", endpoints: [onB(echo.port)] },
      { name: "web", endpoints: [onB(http.port as number)] },
      { name: "dns", protocol: "UDP", port: 53, endpoints: [onB(udpEcho.port)] },
    ];
    // B's table does not list 127.0.0.2:echo, so B must refuse it; A believes it is on B.
    a = await agent("node-a", [...shared, { name: "failover", endpoints: [onB(echo.port, "127.0.0.2"), onB(echo.port)] }, { name: "refused", endpoints: [onB(dead)] }], 300);
    b = await agent("node-b", [...shared, { name: "failover", endpoints: [onB(echo.port)] }], 300);
    await a.tunnel.addPeer("node-b", b.tunnel.peerId, b.tunnel.addrs());
    await b.tunnel.addPeer("node-a", a.tunnel.peerId, a.tunnel.addrs());
  }, 30_000);

  test("20 MB each way at once arrive intact (sha256) and the connection closes on both FINs", async () => {
    const up = randomBytes(20 * MB);
    const down = randomBytes(20 * MB);
    const server = duplexServer(down);
    a.h.table.publish(makeTable([{ name: "bulk", endpoints: [{ ip: "127.0.0.1", port: server.listener.port, node: "node-b" }] }]));
    b.h.table.publish(makeTable([{ name: "bulk", endpoints: [{ ip: "127.0.0.1", port: server.listener.port, node: "node-b" }] }]));
    const { port } = await a.h.addr("bulk");
    const got = await duplexClient(port, up);
    expect(got.bytes).toBe(down.length);
    expect(got.hash).toBe(sha(down));
    expect(await server.received).toBe(sha(up));
    expect(metric(a.metrics, "proxy_remote_streams_total")).toBeGreaterThanOrEqual(1);
    await until(() => a.h.proxy.stats().activeTcp === 0 && b.h.proxy.stats().activeTcp === 0);
  }, 60_000);
});

describe("cross-node services", () => {
  beforeAll(() => {
    // Restore the tables of the first describe (the bulk test replaced them).
    const onB = (port: number, ip = "127.0.0.1") => ({ ip, port, node: "node-b" });
    const shared: PortSpec[] = [
      { name: "echo", endpoints: [onB(echo.port)] },
      { name: "web", endpoints: [onB(http.port as number)] },
      { name: "dns", protocol: "UDP", port: 53, endpoints: [onB(udpEcho.port)] },
    ];
    a.h.table.publish(makeTable([...shared, { name: "failover", endpoints: [onB(echo.port, "127.0.0.2"), onB(echo.port)] }, { name: "refused", endpoints: [onB(dead)] }, { name: "notlisted", endpoints: [onB(echo.port, "127.0.0.3")] }]));
    b.h.table.publish(makeTable([...shared, { name: "failover", endpoints: [onB(echo.port)] }, { name: "refused", endpoints: [onB(dead)] }]));
  });

  test("HTTP through the tunnel returns the far endpoint's answer", async () => {
    const { port } = await a.h.addr("web");
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/x${i}`, { headers: { connection: "close" } });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(`hello from node-b /x${i}`);
    }
  });

  test("a client's half-close reaches the endpoint and the reply still comes back", async () => {
    const { port } = await a.h.addr("echo");
    const text = await new Promise<string>((resolve, reject) => {
      let got = "";
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        allowHalfOpen: true,
        socket: {
          open(s) {
            s.write("ping before FIN");
            s.shutdown(); // FIN; the echo server ends after echoing
          },
          data: (_s, d) => void (got += d.toString()),
          end: (s) => {
            s.end();
            resolve(got);
          },
          close: () => resolve(got),
          error: (_s, e) => reject(e),
        },
      }).catch(reject);
    });
    expect(text).toBe("ping before FIN");
  });

  test("a target the far agent does not list is refused with FAILED and the client fails over", async () => {
    const refusedBefore = metric(b.metrics, "proxy_inbound_refused_total");
    const { port } = await a.h.addr("failover");
    // Round robin starts anywhere; several connections hit the unlisted endpoint at least once.
    for (let i = 0; i < 4; i++) {
      const got = await duplexClient(port, new TextEncoder().encode(`hello ${i}`));
      expect(got.bytes).toBe(`hello ${i}`.length);
    }
    expect(metric(b.metrics, "proxy_inbound_refused_total")).toBeGreaterThan(refusedBefore);
    expect(metric(a.metrics, "tunnel_proxy_open_failures_total")).toBeGreaterThan(0);
  });

  test("a refused target with no other endpoint closes the client without a byte", async () => {
    const { port } = await a.h.addr("notlisted");
    const got = await duplexClient(port, new TextEncoder().encode("anyone?"));
    expect(got.bytes).toBe(0);
  }, 20_000);

  test("a listed endpoint whose local dial fails answers FAILED (counted as dial_failed) and the client is closed", async () => {
    const before = metric(b.metrics, "proxy_inbound_refused_total");
    const { port } = await a.h.addr("refused");
    const got = await duplexClient(port, new TextEncoder().encode("x"));
    expect(got.bytes).toBe(0);
    expect(metric(b.metrics, "proxy_inbound_refused_total")).toBeGreaterThan(before);
  }, 20_000);

  test("UDP datagrams cross the tunnel with their sizes kept", async () => {
    const { host, port } = await a.h.addr("dns", 53, "UDP");
    const sizes = [1, 7, 512, 1400, 9000, 30000, 65000];
    const got: number[] = [];
    const ok: boolean[] = [];
    const payloads = sizes.map((n) => randomBytes(n));
    const client = await Bun.udpSocket({
      binaryType: "uint8array",
      socket: {
        data: (_s, buf) => {
          got.push(buf.length);
          ok.push(payloads.some((p) => p.length === buf.length && Buffer.compare(p, buf) === 0));
        },
      },
    });
    closers.push(() => client.close());
    for (const p of payloads) {
      client.send(p, port, host);
      await until(() => got.length === ok.length && got.includes(p.length), 5000);
    }
    expect(got).toEqual(sizes);
    expect(ok.every(Boolean)).toBe(true);
    client.close();
  });

  test("20,000 distinct UDP flows share one stream, leave no far socket behind, and TCP still works afterwards (EdgeMesh #567)", async () => {
    const { host, port } = await a.h.addr("dns", 53, "UDP");
    const flows = 20_000;
    const batch = 100;
    let answered = 0;
    const deadline = Date.now() + 150_000;
    for (let i = 0; i < flows && Date.now() < deadline; i += batch) {
      const sockets = await Promise.all(
        Array.from({ length: batch }, () =>
          Bun.udpSocket({ binaryType: "uint8array", socket: { data: () => void answered++, error: () => {} } }),
        ),
      );
      const want = answered + batch;
      for (const s of sockets) s.send(Uint8Array.of(1, 2, 3), port, host);
      await until(() => answered >= want, 5000).catch(() => {});
      for (const s of sockets) s.close();
      // Keep the number of live flows well below the per-node bound (no eviction in this test).
      while (a.h.proxy.stats().udpFlows > 600) await Bun.sleep(20);
    }
    expect(answered).toBeGreaterThanOrEqual(flows * 0.99);
    // Every flow and every far socket expires; what stays is the one multiplexed UDP stream.
    await until(
      () =>
        a.h.proxy.stats().udpFlows === 0 &&
        b.inbound.udpRelays() === 0 &&
        metric(a.metrics, "tunnel_proxy_streams_open") <= 1 &&
        metric(b.metrics, "tunnel_proxy_streams_open") <= 1,
      10_000,
    );
    expect(metric(a.metrics, 'tunnel_proxy_streams_open_by_protocol{protocol="udp"}')).toBe(1);
    expect(metric(a.metrics, "proxy_udp_mux_streams")).toBe(1);
    expect(metric(b.metrics, "proxy_inbound_udp_mux_flows_total")).toBeGreaterThanOrEqual(flows * 0.95);
    const { port: tcpPort } = await a.h.addr("echo");
    const got = await duplexClient(tcpPort, new TextEncoder().encode("still alive"));
    expect(got.bytes).toBe("still alive".length);
  }, 200_000);
});

