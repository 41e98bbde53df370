// UDP flows between two of our agents over real tunnels on loopback (PSK): the opener's flows to
// a node share one multiplexed stream, the far agent keeps a socket per flow to the endpoint, and
// the limits hold (flows per node evicted least recently used first, refused targets, idle
// expiry). Against an agent that speaks only EdgeMesh's format each flow gets a stream of its own
// from the UDP stream budget, which is recycled oldest first and never touches TCP's.
import { afterEach, expect, test } from "bun:test";
import type { udp } from "bun";
import { createInboundHandler, createTunnelDialer, type DatagramChannel, type DatagramSink, type InboundHandler, type TunnelDialer } from "../../src/hotpath/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import type { TunnelOptions } from "../../src/tunnel/index.ts";
import { stopAllTunnels, testTunnel, type TestTunnel } from "../support/tunnels.ts";
import { makeTable, tableSource } from "./proxy-support.ts";
import { dataFrame } from "../../src/hotpath/remote/mux-frames.ts";

class Flow implements DatagramSink {
  ch: DatagramChannel | null = null;
  got: Uint8Array[] = [];
  closed = false;
  failed: Error | null = null;
  open(ch: DatagramChannel): void {
    this.ch = ch;
  }
  fail(err: Error): void {
    this.failed = err;
  }
  datagram(d: Uint8Array): void {
    this.got.push(d.slice()); // valid only during the call
  }
  close(): void {
    this.closed = true;
  }
}

async function until(check: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await Bun.sleep(10);
  }
}

const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await stopAllTunnels();
});

/** An echo server that also records which source ports it saw. */
async function echoServer(): Promise<{ port: number; sources: Set<number> }> {
  const sources = new Set<number>();
  const s: udp.Socket<"uint8array"> = await Bun.udpSocket({
    hostname: "127.0.0.1",
    binaryType: "uint8array",
    socket: {
      data(sock, buf, port, addr) {
        sources.add(port);
        sock.send(buf, port, addr);
      },
      error() {},
    },
  });
  cleanups.push(() => s.close());
  return { port: s.port, sources };
}

interface Setup {
  a: TestTunnel;
  c: TestTunnel;
  dialer: TunnelDialer;
  inbound: InboundHandler;
  echo: { port: number; sources: Set<number> }[];
}

async function setup(o: { a?: Partial<TunnelOptions>; c?: Partial<TunnelOptions>; idleMs?: number; flowsPerPeer?: number; farFlowsPerPeer?: number } = {}): Promise<Setup> {
  const echo = [await echoServer(), await echoServer()];
  const a = testTunnel("node-a", o.a);
  const c = testTunnel("node-c", o.c);
  const table = tableSource(
    makeTable([
      { name: "e1", protocol: "UDP", port: 53, endpoints: [{ ip: "127.0.0.1", port: echo[0]!.port, node: "node-c" }] },
      { name: "e2", protocol: "UDP", port: 54, endpoints: [{ ip: "127.0.0.1", port: echo[1]!.port, node: "node-c" }] },
      { name: "web", protocol: "TCP", port: 80, endpoints: [{ ip: "127.0.0.1", port: 1, node: "node-c" }] },
    ]),
  );
  const inbound = createInboundHandler({ proxy: { spliceInbound: () => null }, table, nodeName: "node-c", udpIdleTimeoutMs: o.idleMs ?? 30_000, log: c.log, metrics: c.metrics, udpFlowsPerPeer: o.farFlowsPerPeer });
  c.tunnel.handleProxy(inbound.handle);
  await a.tunnel.start();
  await c.tunnel.start();
  await a.tunnel.addPeer("node-c", c.tunnel.peerId, c.tunnel.addrs());
  const dialer = createTunnelDialer({ tunnel: a.tunnel, log: createMemoryLogger(), metrics: a.metrics, maxUdpFlowsPerPeer: o.flowsPerPeer });
  cleanups.push(() => {
    dialer.stop();
    inbound.stop();
  });
  return { a, c, dialer, inbound, echo };
}

const msg = (i: number) => new TextEncoder().encode(`flow ${i}`);
const text = (d: Uint8Array | undefined) => (d ? new TextDecoder().decode(d) : "");

test("200 flows to two endpoints share one stream; each flow gets its own echo from its own far socket", async () => {
  const s = await setup();
  const flows = Array.from({ length: 200 }, () => new Flow());
  flows.forEach((f, i) => s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[i % 2]!.port, f));
  await until(() => flows.every((f) => f.ch !== null), 10_000, "every flow open");
  flows.forEach((f, i) => expect(f.ch!.send(msg(i))).toBe(true));
  await until(() => flows.every((f) => f.got.length === 1), 10_000, "every echo");
  flows.forEach((f, i) => expect(text(f.got[0])).toBe(`flow ${i}`));
  expect(s.a.metrics.snapshot()["tunnel_proxy_streams_opened_total"]).toBe(1);
  expect(s.c.metrics.snapshot()["tunnel_proxy_streams_accepted_total"]).toBe(1);
  expect(s.inbound.udpRelays()).toBe(200);
  expect(s.echo[0]!.sources.size + s.echo[1]!.sources.size).toBe(200);
  expect(s.dialer.udpFlowsTo("node-c")).toEqual({ open: 200, max: 4096 });
  expect(s.inbound.udpFlowsOf(s.a.tunnel.peerId).open).toBe(200);
  const limits = s.a.tunnel.peers()[0]!.limits;
  expect(limits.udp.open).toBe(1);
  expect(limits.tcp.open).toBe(0);
});

test("closing flows frees their far sockets; the stream stays for the next flows, which need no new stream", async () => {
  const s = await setup();
  const flows = Array.from({ length: 20 }, () => new Flow());
  for (const f of flows) s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, f);
  await until(() => flows.every((f) => f.ch !== null));
  for (const f of flows.slice(0, 15)) f.ch!.close();
  await until(() => s.inbound.udpRelays() === 5, 5000, "far sockets closed");
  expect(s.dialer.udpFlowsTo("node-c").open).toBe(5);
  const late = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, late);
  expect(late.ch).not.toBeNull(); // bound at once: the stream is there
  late.ch!.send(msg(99));
  await until(() => late.got.length === 1);
  expect(s.a.metrics.snapshot()["tunnel_proxy_streams_opened_total"]).toBe(1);
});

test("a flow to an address that is not an endpoint on the far node is refused there and closed here; the others live", async () => {
  const s = await setup();
  const good = new Flow();
  const bad = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, good);
  await until(() => good.ch !== null);
  s.dialer.dialDatagrams("node-c", "127.0.0.1", 9, bad); // bound at once; the far agent says no
  await until(() => bad.closed, 5000, "refused flow closed");
  expect(s.a.metrics.snapshot()["proxy_udp_mux_flows_refused_total"]).toBe(1);
  expect(s.c.metrics.snapshot()["proxy_inbound_udp_mux_refused_total"]).toBe(1);
  good.ch!.send(msg(1));
  await until(() => good.got.length === 1);
  expect(good.closed).toBe(false);
});

test("flows to one node are bounded: the least recently used is closed to make room, counted", async () => {
  const s = await setup({ flowsPerPeer: 10 });
  const flows = Array.from({ length: 10 }, () => new Flow());
  for (const f of flows) s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, f);
  await until(() => flows.every((f) => f.ch !== null));
  // Flow 0 is used again, so flow 1 is now the least recently used.
  flows[0]!.ch!.send(msg(0));
  await until(() => flows[0]!.got.length === 1);
  const extra = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, extra);
  expect(flows[1]!.closed).toBe(true);
  expect(flows.filter((f) => f.closed).length).toBe(1);
  expect(s.a.metrics.snapshot()['proxy_udp_flows_evicted_total{limit="peer"}']).toBe(1);
  expect(s.dialer.udpFlowsTo("node-c")).toEqual({ open: 10, max: 10 });
  await until(() => s.inbound.udpRelays() === 10, 5000, "the evicted flow's far socket closed");
  extra.ch!.send(msg(11));
  await until(() => extra.got.length === 1);
});

test("the far agent bounds a peer's far sockets too: past its cap the least recently used is evicted, counted there, and closed here", async () => {
  const s = await setup({ farFlowsPerPeer: 2 });
  const flows = [new Flow(), new Flow()];
  for (const f of flows) s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, f);
  await until(() => flows.every((f) => f.ch !== null));
  flows[1]!.ch!.send(msg(1)); // flow 0 is now the far agent's least recently used
  await until(() => flows[1]!.got.length === 1);
  const extra = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, extra);
  await until(() => flows[0]!.closed, 5000, "the evicted flow closed at the opener");
  expect(s.c.metrics.snapshot()["proxy_inbound_udp_evicted_total"]).toBe(1);
  expect(s.inbound.udpFlowsOf(s.a.tunnel.peerId)).toEqual({ open: 2, max: 2 });
  extra.ch!.send(msg(2));
  await until(() => extra.got.length === 1);
  expect(flows[1]!.closed).toBe(false);
});

test("datagrams that reach the far agent before its socket for the flow is ready queue up to 64; the rest are dropped and counted", async () => {
  const s = await setup();
  const first = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, first);
  await until(() => first.ch !== null); // the stream exists: the next flow is bound at once
  const burst = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[1]!.port, burst);
  // OPEN and 200 DATA frames leave in one go; the far socket is created asynchronously.
  for (let i = 0; i < 200; i++) burst.ch!.send(msg(i));
  await until(() => burst.got.length >= 64, 5000, "the queued datagrams echoed");
  await Bun.sleep(200);
  const dropped = s.c.metrics.snapshot()["proxy_inbound_udp_dropped_total"]!;
  expect(dropped).toBeGreaterThan(0);
  expect(burst.got.length + dropped).toBeLessThanOrEqual(200);
  expect(burst.got.slice(0, 64).map(text)).toEqual(Array.from({ length: 64 }, (_, i) => `flow ${i}`)); // the queue keeps order
});

test("the opener drops a datagram for a flow it does not know, and resets the stream on a bad frame, counting both", async () => {
  // The far side is scripted here (a tunnel that accepts the multiplexed stream and writes
  // frames of its choosing): a real agent never sends these on purpose.
  const a = testTunnel("node-a");
  const c = testTunnel("node-c");
  let far: Parameters<Parameters<typeof c.tunnel.handleProxy>[0]>[1] | undefined;
  c.tunnel.handleProxy((h, stream) => {
    if (!h.udpMux) return false;
    far = stream;
    return true;
  });
  await Promise.all([a.tunnel.start(), c.tunnel.start()]);
  await a.tunnel.addPeer("node-c", c.tunnel.peerId, c.tunnel.addrs());
  const dialer = createTunnelDialer({ tunnel: a.tunnel, log: createMemoryLogger(), metrics: a.metrics });
  cleanups.push(() => dialer.stop());
  const f = new Flow();
  dialer.dialDatagrams("node-c", "127.0.0.1", 5353, f);
  await until(() => f.ch !== null && far !== undefined, 5000, "the multiplexed stream");
  // Flow 1 is the first flow's id; 77 was never opened (as a reply that crossed our CLOSE).
  far!.send(dataFrame(77, new TextEncoder().encode("stray")));
  far!.send(dataFrame(1, new TextEncoder().encode("reply")));
  await until(() => f.got.length === 1);
  expect(text(f.got[0])).toBe("reply");
  expect(a.metrics.snapshot()["proxy_udp_mux_unknown_flow_total"]).toBe(1);
  expect(f.closed).toBe(false);
  far!.send(new Uint8Array([9, 0, 0, 0, 1, 0, 0])); // kind 9 does not exist
  await until(() => f.closed, 5000, "the flow closed with its reset stream");
  expect(a.metrics.snapshot()['proxy_udp_mux_protocol_errors_total{side="opener"}']).toBe(1);
});

test("the far agent expires idle flows and tells the opener, whose flow then closes", async () => {
  const s = await setup({ idleMs: 300 });
  const f = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, f);
  await until(() => f.ch !== null);
  f.ch!.send(msg(1));
  await until(() => f.got.length === 1);
  await until(() => f.closed, 5000, "flow closed by the far agent's idle expiry");
  expect(s.inbound.udpRelays()).toBe(0);
  expect(s.c.metrics.snapshot()["proxy_inbound_udp_expired_total"]).toBeGreaterThanOrEqual(1);
  expect(s.dialer.udpFlowsTo("node-c").open).toBe(0);
  // The opener counts it too, in the proxy's series: its own sweep never saw this flow idle.
  expect(s.a.metrics.snapshot()["proxy_udp_flows_expired_total"]).toBe(1);
});

test("a reset of the multiplexed stream closes every flow on it; the next flow opens a new one", async () => {
  const s = await setup();
  const flows = Array.from({ length: 5 }, () => new Flow());
  for (const f of flows) s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, f);
  await until(() => flows.every((f) => f.ch !== null));
  await until(() => s.inbound.udpRelays() === 5);
  s.inbound.stop(); // the far agent resets its streams
  await until(() => flows.every((f) => f.closed), 5000, "every flow closed");
  const next = new Flow();
  s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, next);
  await until(() => next.ch !== null || next.failed !== null);
  expect(s.a.metrics.snapshot()["tunnel_proxy_streams_opened_total"]).toBe(2);
});

test("against an agent speaking EdgeMesh's format: a stream per flow, raw datagrams, recycled oldest first at the UDP budget, and TCP streams still open", async () => {
  const s = await setup({ a: { maxStreamsPerPeer: 8 }, c: { extensions: false, maxStreamsPerPeer: 8 } });
  const flows = Array.from({ length: 20 }, () => new Flow());
  for (const [i, f] of flows.entries()) {
    s.dialer.dialDatagrams("node-c", "127.0.0.1", s.echo[0]!.port, f);
    await until(() => f.ch !== null || f.failed !== null, 5000, `flow ${i} open`);
    expect(f.failed).toBeNull();
    f.ch!.send(msg(i));
    await until(() => f.got.length === 1, 5000, `flow ${i} echoed`);
    expect(text(f.got[0])).toBe(`flow ${i}`);
  }
  const snap = s.a.metrics.snapshot();
  expect(snap["proxy_udp_own_stream_flows_total"]).toBe(20);
  expect(snap['proxy_udp_flows_evicted_total{limit="peer"}']).toBe(12);
  expect(flows.slice(0, 12).every((f) => f.closed)).toBe(true);
  expect(flows.slice(12).some((f) => f.closed)).toBe(false);
  expect(s.a.tunnel.peers()[0]!.limits.udp.open).toBe(8);
  // The UDP budget is full on both agents; a TCP stream is its own budget's.
  const tcp = await s.a.tunnel.openProxyStream("node-c", { protocol: "tcp", ip: "127.0.0.1", port: 1 }).catch((e: Error) => e);
  // node-c refuses the target (nothing listens on port 1, and the handler splices nowhere): the
  // refusal must be the handler's FAILED, not a stream limit.
  expect((tcp as { code?: string }).code).toBe("PROXY_REFUSED");
  expect(s.c.metrics.snapshot()['tunnel_proxy_stream_limit_total{protocol="tcp"}']).toBe(0);
});
