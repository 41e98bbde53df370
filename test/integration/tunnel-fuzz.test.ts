// Fuzz from a connected peer, over a real tunnel (loopback, PSK): a bare libp2p host that passes
// the PSK and Noise opens proxy streams to one of our agents and sends mutated and random proxy
// headers (with early data behind), then, on multiplexed UDP streams it was granted, mutated
// frame streams. The agent must answer FAILED or reset, count what it dropped, leave no stream,
// flow or socket behind, and serve a well-formed peer afterwards.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { udp } from "bun";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Stream } from "@libp2p/interface";
import { multiaddr } from "@multiformats/multiaddr";
import { createInboundHandler, createTunnelDialer, type DatagramChannel, type DatagramSink, type InboundHandler } from "../../src/hotpath/index.ts";
import { closeFrame, dataFrame, openFrame } from "../../src/hotpath/remote/mux-frames.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { decodeProxyBody, encodeProxy, MsgType, PROXY_PROTOCOL } from "../../src/tunnel/index.ts";
import { readHeader } from "../../src/tunnel/header-io.ts";
import { bareHost, stopAllTunnels, testTunnel, type TestTunnel } from "../support/tunnels.ts";
import { makeTable, tableSource } from "./proxy-support.ts";
import { rng } from "../support/rng.ts";

function mutate(r: (n: number) => number, base: Uint8Array): Uint8Array {
  const b = Array.from(base);
  for (let e = 0, edits = 1 + r(5); e < edits; e++) {
    const op = r(4);
    const at = r(b.length + 1);
    if (op === 0 && b.length > 0) b[Math.min(at, b.length - 1)] = r(256);
    else if (op === 1) b.splice(at, 0, ...Array.from({ length: 1 + r(8) }, () => r(256)));
    else if (op === 2 && b.length > 0) b.splice(Math.min(at, b.length - 1), 1 + r(6));
    else b.length = Math.min(b.length, at);
  }
  return Uint8Array.from(b);
}

async function until(check: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`${what} not met in time`);
    await Bun.sleep(20);
  }
}

let c: TestTunnel;
let inbound: InboundHandler;
let echo: udp.Socket<"uint8array">;
let raw: Awaited<ReturnType<typeof bareHost>>;
const metric = (name: string) => c.metrics.snapshot()[name] ?? 0;

beforeAll(async () => {
  echo = await Bun.udpSocket({
    hostname: "127.0.0.1",
    binaryType: "uint8array",
    socket: { data: (s, buf, port, addr) => void s.send(buf, port, addr), error: () => {} },
  });
  c = testTunnel("node-c");
  const table = tableSource(makeTable([{ name: "dns", protocol: "UDP", port: 53, endpoints: [{ ip: "127.0.0.1", port: echo.port, node: "node-c" }] }]));
  inbound = createInboundHandler({ proxy: { spliceInbound: () => null }, table, nodeName: "node-c", udpIdleTimeoutMs: 30_000, log: c.log, metrics: c.metrics });
  c.tunnel.handleProxy(inbound.handle);
  await c.tunnel.start();
  raw = await bareHost();
  await raw.peerStore.merge(peerIdFromString(c.tunnel.peerId), { multiaddrs: c.tunnel.addrs().map((a) => multiaddr(a)) });
});

afterAll(async () => {
  inbound?.stop();
  echo?.close();
  await stopAllTunnels();
});

/** A proxy stream from the raw peer; resolves when the agent has answered, closed or reset it. */
async function send(bytes: Uint8Array, closeAfter: boolean): Promise<{ s: Stream; answer: "SUCCESS" | "FAILED" | "closed" }> {
  const s = await raw.dialProtocol(peerIdFromString(c.tunnel.peerId), PROXY_PROTOCOL);
  s.send(bytes);
  if (closeAfter) s.close().catch(() => {});
  const answer = await readHeader(s, decodeProxyBody, 15_000).then(
    (m) => (m.type === MsgType.SUCCESS ? ("SUCCESS" as const) : ("FAILED" as const)),
    () => "closed" as const,
  );
  return { s, answer };
}

const udpConnect = encodeProxy({ type: MsgType.CONNECT, protocol: "udp", nodeName: "node-c", ip: "127.0.0.1", port: 0, features: 5 });
const connectFor = (port: number, features: number, protocol = "udp") => encodeProxy({ type: MsgType.CONNECT, protocol, nodeName: "node-c", ip: "127.0.0.1", port, features });

test("400 mutated and random proxy headers, early data behind some: each answered FAILED or closed, counted, nothing left open", async () => {
  const r = rng(0xbadc0de);
  const bases = [connectFor(echo.port, 5), connectFor(echo.port, 2, "tcp"), connectFor(echo.port, 0), udpConnect];
  const answers = { SUCCESS: 0, FAILED: 0, closed: 0 };
  const badBefore = metric("tunnel_proxy_bad_header_total");
  for (let batch = 0; batch < 20; batch++) {
    const results = await Promise.all(
      Array.from({ length: 20 }, () => {
        const header = r(5) === 0 ? Uint8Array.from({ length: 1 + r(80) }, () => r(256)) : mutate(r, bases[r(bases.length)]!);
        const early = r(2) === 0 ? Uint8Array.from({ length: r(2000) }, () => r(256)) : new Uint8Array(0);
        return send(Buffer.concat([header, early]), true);
      }),
    );
    for (const { s, answer } of results) {
      answers[answer]++;
      s.abort(new Error("done"));
    }
  }
  console.log("fuzzed headers answered:", answers);
  expect(answers.FAILED + answers.closed).toBeGreaterThan(300);
  expect(metric("tunnel_proxy_bad_header_total") - badBefore).toBeGreaterThan(100);
  // No stream, far socket or flow is left behind.
  await until(() => metric("tunnel_proxy_streams_open") === 0 && inbound.udpRelays() === 0, 10_000, "everything closed");
}, 120_000);

test("mutated frame streams on granted multiplexed streams: protocol errors reset, refusals and strays counted, every far socket closed", async () => {
  const r = rng(0xf00d);
  const valid = Buffer.concat([
    openFrame(1, "127.0.0.1", echo.port),
    dataFrame(1, new Uint8Array(100).fill(1)),
    openFrame(2, "127.0.0.1", echo.port),
    dataFrame(2, new Uint8Array(10).fill(2)),
    openFrame(3, "10.9.9.9", 53), // not an endpoint here: refused
    dataFrame(7, new Uint8Array(5)), // never opened: dropped
    closeFrame(1, 0),
    dataFrame(2, new Uint8Array(3)),
  ]);
  let granted = 0;
  for (let i = 0; i < 60; i++) {
    const { s, answer } = await send(connectFor(echo.port, 5), false);
    if (answer !== "SUCCESS") throw new Error(`a valid multiplexed CONNECT was answered ${answer}`);
    granted++;
    const body = i % 5 === 0 ? valid : mutate(r, valid);
    for (let off = 0; off < body.length; ) {
      const n = 1 + r(40);
      if (s.status !== "open" || s.writeStatus !== "writable") break;
      s.send(body.subarray(off, off + n));
      off += n;
    }
    await Bun.sleep(5);
    s.abort(new Error("done"));
  }
  expect(granted).toBe(60);
  expect(metric('proxy_udp_mux_protocol_errors_total{side="far"}')).toBeGreaterThan(0);
  expect(metric("proxy_inbound_udp_mux_refused_total")).toBeGreaterThan(0);
  expect(metric("proxy_inbound_udp_mux_unknown_flow_total")).toBeGreaterThan(0);
  await until(() => metric("tunnel_proxy_streams_open") === 0 && inbound.udpRelays() === 0, 10_000, "every far socket closed");
}, 120_000);

test("after the fuzzing the agent still serves a well-formed peer: a flow through our own dialer is echoed", async () => {
  const a = testTunnel("node-a");
  await a.tunnel.start();
  await a.tunnel.addPeer("node-c", c.tunnel.peerId, c.tunnel.addrs());
  const dialer = createTunnelDialer({ tunnel: a.tunnel, log: createMemoryLogger(), metrics: a.metrics });
  const got: number[] = [];
  let ch: DatagramChannel | null = null;
  const sink: DatagramSink = { open: (x) => void (ch = x), fail: () => {}, datagram: (d) => void got.push(d.length), close: () => {} };
  dialer.dialDatagrams("node-c", "127.0.0.1", echo.port, sink);
  await until(() => ch !== null, 10_000, "flow open");
  ch!.send(new Uint8Array(321));
  await until(() => got.length === 1, 5_000, "echo");
  expect(got).toEqual([321]);
  dialer.stop();
});
