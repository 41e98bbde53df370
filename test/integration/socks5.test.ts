// The SOCKS5 listener with real sockets and a real tunnel: two agents in one process on loopback
// (libp2p, PSK, Noise, yamux), node-a runs the listener, node-b is the far side whose inbound
// handler lets peers reach its own address (127.0.0.2 here) when SOCKS5 is on. Clients are curl
// (--socks5-hostname) and a raw socket speaking RFC 1928 byte by byte.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import type { KubeObject } from "../../src/control/index.ts";
import { createInboundHandler, createTunnelDialer } from "../../src/hotpath/index.ts";
import { createSocks5Server, nodeDirectory, type Socks5Server } from "../../src/hotpath/socks5/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";
import { stopAllTunnels, testTunnel } from "../support/tunnels.ts";
import { startProxy, type Harness } from "./proxy-support.ts";

const closers: (() => unknown)[] = [stopAllTunnels];
const nodeObj = (name: string, ip: string): KubeObject => ({ kind: "Node", metadata: { name }, status: { addresses: [{ type: "InternalIP", address: ip }] } });
// node-b's host is 127.0.0.2, node-a's 127.0.0.3; node-c is a Node nobody runs an agent on.
const DIR = nodeDirectory([nodeObj("node-a", "127.0.0.3"), nodeObj("node-b", "127.0.0.2"), nodeObj("node-c", "127.0.0.4")]);

let a: { h: Harness; metrics: MetricsRegistry };
let bOpen = true; // node-b's socks5Proxy.enable, as its inbound handler sees it
let socks: Socks5Server;
let socksMetrics: MetricsRegistry;
let echoB: TCPSocketListener<unknown>;
let echoA: TCPSocketListener<unknown>;
let http: ReturnType<typeof Bun.serve>;
let deadPort: number;

function metric(m: MetricsRegistry, name: string): number {
  let sum = 0;
  for (const [k, v] of Object.entries(m.snapshot())) if (k === name || k.startsWith(name + "{")) sum += v;
  return sum;
}

function echoOn(hostname: string, tag: string): TCPSocketListener<unknown> {
  const l = Bun.listen({ hostname, port: 0, allowHalfOpen: true, socket: { open: (s) => void s.write(tag), data: (s, d) => void s.write(d), end: (s) => void s.end() } });
  closers.push(() => l.stop(true));
  return l;
}

/** curl through the listener (async: the listener runs in this process). */
async function curl(args: string[]): Promise<string> {
  const p = Bun.spawn(["curl", "-s", "--max-time", "5", ...args], { stdout: "pipe", stderr: "ignore" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return out;
}

/** A raw client: what it received, and whether the server closed. */
function rawClient(port: number) {
  let got = new Uint8Array(0);
  let closed = false;
  let sock: Socket<unknown> | null = null;
  const opened = Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      binaryType: "uint8array",
      open: (s) => void (sock = s),
      data: (_s, d: Uint8Array) => {
        const next = new Uint8Array(got.length + d.length);
        next.set(got);
        next.set(d, got.length);
        got = next;
      },
      close: () => void (closed = true),
      error: () => void (closed = true),
    },
  });
  const until = async (cond: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await Bun.sleep(5);
    return cond();
  };
  return {
    async send(...chunks: number[][]) {
      await opened;
      for (const c of chunks) {
        sock!.write(Uint8Array.from(c));
        await Bun.sleep(5);
      }
    },
    got: () => got,
    closed: () => closed,
    waitBytes: (n: number, ms?: number) => until(() => got.length >= n, ms),
    waitClosed: (ms?: number) => until(() => closed, ms),
    close: () => sock?.end(),
  };
}

const name = (s: string) => [...s].map((c) => c.charCodeAt(0));
const connectTo = (host: string, port: number) => [5, 1, 0, 3, host.length, ...name(host), port >> 8, port & 0xff];

beforeAll(async () => {
  echoB = echoOn("127.0.0.2", "B:");
  echoA = echoOn("127.0.0.3", "A:");
  http = Bun.serve({ hostname: "127.0.0.2", port: 0, fetch: (req) => new Response(`node-b host port ${new URL(req.url).pathname}`) });
  closers.push(() => http.stop(true));
  const l = Bun.listen({ hostname: "127.0.0.2", port: 0, socket: { data() {} } });
  deadPort = l.port;
  l.stop(true);

  const ta = testTunnel("node-a");
  const tb = testTunnel("node-b");
  await ta.tunnel.start();
  await tb.tunnel.start();
  const log = createMemoryLogger();
  const ha = startProxy([], { nodeName: "node-a", remote: createTunnelDialer({ tunnel: ta.tunnel, log, metrics: ta.metrics }), metrics: ta.metrics, dialTimeoutMs: 2000 });
  const hb = startProxy([], { nodeName: "node-b", metrics: tb.metrics });
  closers.push(() => ha.proxy.stop(), () => hb.proxy.stop());
  const inbound = createInboundHandler({
    proxy: hb.proxy,
    table: hb.table,
    nodeName: "node-b",
    udpIdleTimeoutMs: 1000,
    hostAddresses: { has: (ip) => bOpen && ip === "127.0.0.2" },
    log,
    metrics: tb.metrics,
  });
  closers.push(() => inbound.stop());
  tb.tunnel.handleProxy(inbound.handle);
  await ta.tunnel.addPeer("node-b", tb.tunnel.peerId, tb.tunnel.addrs());
  a = { h: ha, metrics: ta.metrics };

  socksMetrics = createMetrics();
  socks = createSocks5Server({
    host: "127.0.0.1",
    port: 0,
    nodeName: "node-a",
    proxy: ha.proxy,
    nodes: () => DIR,
    maxConnections: 10_000,
    maxConnectionsPerPort: 4,
    handshakeTimeoutMs: 300,
    metrics: socksMetrics,
    log,
  });
  socks.start();
  closers.push(() => socks.stop());
}, 30_000);

afterAll(async () => {
  for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
});

describe("SOCKS5 CONNECT through the tunnel", () => {
  test("curl --socks5-hostname reaches a host port on node-b by its node name", async () => {
    const t0 = performance.now();
    const r = await curl(["--socks5-hostname", `127.0.0.1:${socks.port}`, `http://node-b:${http.port}/ssh-like`]);
    console.log(`socks5 integration: first curl through the tunnel ${(performance.now() - t0).toFixed(1)} ms`);
    expect(r).toBe("node-b host port /ssh-like");
    expect(metric(socksMetrics, "socks5_replies_total{reply=\"succeeded\"}")).toBeGreaterThanOrEqual(1);
    expect(metric(a.metrics, "proxy_remote_streams_total")).toBeGreaterThanOrEqual(1);
  });

  test("curl by the node's IP (a plain SOCKS5 IPv4 request) reaches the same port", async () => {
    const r = await curl(["--socks5", `127.0.0.1:${socks.port}`, `http://127.0.0.2:${http.port}/by-ip`]);
    expect(r).toBe("node-b host port /by-ip");
  });

  test("greeting, request and payload split into single bytes: the reply, then echoed bytes", async () => {
    const c = rawClient(socks.port);
    const all = [5, 1, 0, ...connectTo("node-b", echoB.port)];
    await c.send(...all.map((b) => [b]));
    expect(await c.waitBytes(12)).toBe(true);
    expect([...c.got().subarray(0, 12)]).toEqual([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    await c.send(name("ping"));
    expect(await c.waitBytes(12 + 2 + 4)).toBe(true);
    expect(new TextDecoder().decode(c.got().subarray(12))).toBe("B:ping");
    c.close();
  });

  test("greeting, request and first payload in one write: the payload is not lost", async () => {
    const c = rawClient(socks.port);
    await c.send([5, 1, 0, ...connectTo("node-b", echoB.port), ...name("early")]);
    expect(await c.waitBytes(12 + 2 + 5)).toBe(true);
    expect([...c.got().subarray(0, 12)]).toEqual([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(new TextDecoder().decode(c.got().subarray(12))).toBe("B:early");
    c.close();
  });

  test("this node is dialed directly, not through the tunnel", async () => {
    const before = metric(a.metrics, "proxy_remote_streams_total");
    const c = rawClient(socks.port);
    await c.send([5, 1, 0], connectTo("node-a", echoA.port));
    expect(await c.waitBytes(12 + 2)).toBe(true);
    expect(new TextDecoder().decode(c.got().subarray(12))).toBe("A:");
    expect(metric(a.metrics, "proxy_remote_streams_total")).toBe(before);
    c.close();
  });
});

describe("SOCKS5 replies for what cannot be done", () => {
  const expectReply = async (request: number[], code: number) => {
    const c = rawClient(socks.port);
    await c.send([5, 1, 0], request);
    expect(await c.waitBytes(12)).toBe(true);
    expect([...c.got().subarray(0, 2)]).toEqual([5, 0]);
    expect(c.got()[3]).toBe(code);
    expect(await c.waitClosed()).toBe(true);
  };

  test("an unknown node name: host unreachable (04)", () => expectReply(connectTo("no-such-node", 22), 4));
  test("an address that is no node's: not allowed (02)", () => expectReply([5, 1, 0, 1, 10, 96, 0, 1, 1, 187], 2));
  test("BIND and UDP ASSOCIATE: command not supported (07)", async () => {
    await expectReply([5, 2, 0, 3, 6, ...name("node-b"), 0, 22], 7);
    await expectReply([5, 3, 0, 1, 0, 0, 0, 0, 0, 0], 7);
  });
  test("an IPv6 destination: address type not supported (08)", () => expectReply([5, 1, 0, 4, ...new Array(16).fill(0), 0, 22], 8));
  test("a closed port on node-b: the far agent answers FAILED, connection refused (05)", () => expectReply(connectTo("node-b", deadPort), 5));
  test("node-b with SOCKS5 off refuses its host ports: connection refused (05)", async () => {
    bOpen = false;
    try {
      await expectReply(connectTo("node-b", echoB.port), 5);
    } finally {
      bOpen = true;
    }
  });
  test("a node without a reachable agent: host unreachable (04)", () => expectReply(connectTo("node-c", 22), 4), 10_000);
});

describe("SOCKS5 bad clients", () => {
  test("no acceptable method: X'FF' and a close", async () => {
    const c = rawClient(socks.port);
    await c.send([5, 1, 2]);
    expect(await c.waitClosed()).toBe(true);
    expect([...c.got()]).toEqual([5, 0xff]);
    expect(metric(socksMetrics, 'socks5_handshake_failures_total{reason="no_acceptable_method"}')).toBeGreaterThanOrEqual(1);
  });

  test("malformed greetings and requests are dropped and counted, and the listener keeps serving", async () => {
    const greetings = metric(socksMetrics, 'socks5_handshake_failures_total{reason="malformed_greeting"}');
    const requests = metric(socksMetrics, 'socks5_handshake_failures_total{reason="malformed_request"}');
    const http10 = rawClient(socks.port);
    await http10.send(name("GET / HTTP/1.0\r\n\r\n"));
    expect(await http10.waitClosed()).toBe(true);
    expect(http10.got().length).toBe(0);
    const badRsv = rawClient(socks.port);
    await badRsv.send([5, 1, 0], [5, 1, 9, 1, 127, 0, 0, 2, 0, 22]);
    expect(await badRsv.waitClosed()).toBe(true);
    expect([...badRsv.got()]).toEqual([5, 0]);
    expect(metric(socksMetrics, 'socks5_handshake_failures_total{reason="malformed_greeting"}')).toBe(greetings + 1);
    expect(metric(socksMetrics, 'socks5_handshake_failures_total{reason="malformed_request"}')).toBe(requests + 1);
    const r = await curl(["--socks5-hostname", `127.0.0.1:${socks.port}`, `http://node-b:${http.port}/still`]);
    expect(r).toBe("node-b host port /still");
  });

  test("a client that stops mid-handshake is cut after the handshake timeout", async () => {
    const before = metric(socksMetrics, 'socks5_handshake_failures_total{reason="timeout"}');
    const c = rawClient(socks.port);
    await c.send([5, 1]);
    expect(await c.waitClosed(3000)).toBe(true);
    expect(metric(socksMetrics, 'socks5_handshake_failures_total{reason="timeout"}')).toBe(before + 1);
  });

  test("past maxConnectionsPerPort new clients are refused; closing one makes room", async () => {
    const settle = Date.now() + 3000;
    while (socks.stats().active > 0 && Date.now() < settle) await Bun.sleep(20);
    expect(socks.stats().active).toBe(0);
    const held = [rawClient(socks.port), rawClient(socks.port), rawClient(socks.port), rawClient(socks.port)];
    for (const c of held) {
      await c.send([5, 1, 0], connectTo("node-b", echoB.port));
      expect(await c.waitBytes(14)).toBe(true);
    }
    const refused = metric(socksMetrics, 'socks5_refused_total{reason="limit"}');
    const extra = rawClient(socks.port);
    await extra.send([5, 1, 0]);
    expect(await extra.waitClosed()).toBe(true);
    expect(extra.got().length).toBe(0);
    expect(metric(socksMetrics, 'socks5_refused_total{reason="limit"}')).toBe(refused + 1);
    held[0]!.close();
    expect(await held[0]!.waitClosed()).toBe(true);
    await Bun.sleep(50);
    const next = rawClient(socks.port);
    await next.send([5, 1, 0]);
    expect(await next.waitBytes(2)).toBe(true);
    next.close();
    for (const c of held.slice(1)) c.close();
    const end = Date.now() + 3000;
    while (socks.stats().active > 0 && Date.now() < end) await Bun.sleep(20);
    expect(socks.stats().active).toBe(0);
  });
});
