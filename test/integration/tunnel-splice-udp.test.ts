// Datagrams over real tunnel streams (loopback, PSK): framing survives frames split anywhere
// across chunks, and an EdgeMesh peer (no framing: each chunk is a datagram) still works in both
// roles, as the opener of a UDP stream to us and as the far end of our UDP flow.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { udp } from "bun";
import type { StreamMessageEvent } from "@libp2p/interface";
import { createInboundHandler, StreamDatagrams, type DatagramSink, type InboundHandler } from "../../src/hotpath/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import type { ProxyHandler, Tunnel } from "../../src/tunnel/index.ts";
import { stopAllTunnels, testTunnel } from "../support/tunnels.ts";
import { makeTable, tableSource } from "./proxy-support.ts";

let a: Tunnel;
let c: Tunnel;
let handler: ProxyHandler = () => false;
let inbound: InboundHandler;
let echo: udp.Socket<"uint8array">;

function tunnel(name: string): Tunnel {
  return testTunnel(name).tunnel;
}

class Collect implements DatagramSink {
  got: Uint8Array[] = [];
  closed = false;
  open(): void {}
  fail(): void {}
  datagram(d: Uint8Array): void {
    this.got.push(d.slice()); // only valid during the call
  }
  close(): void {
    this.closed = true;
  }
}

async function until(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

beforeAll(async () => {
  a = tunnel("node-a");
  c = tunnel("node-c");
  await a.start();
  await c.start();
  c.handleProxy((h, s) => handler(h, s));
  await a.addPeer("node-c", c.peerId, c.addrs());
  echo = await Bun.udpSocket({
    hostname: "127.0.0.1",
    binaryType: "uint8array",
    socket: { data: (s, buf, port, addr) => void s.send(buf, port, addr), error: () => {} },
  });
  const table = tableSource(makeTable([{ name: "dns", protocol: "UDP", port: 53, endpoints: [{ ip: "127.0.0.1", port: echo.port, node: "node-c" }] }]));
  inbound = createInboundHandler({
    proxy: { spliceInbound: () => null },
    table,
    nodeName: "node-c",
    udpIdleTimeoutMs: 5000,
    log: createMemoryLogger(),
    metrics: createMetrics(),
  });
});

afterAll(async () => {
  inbound?.stop();
  echo?.close();
  await stopAllTunnels();
});

test("framed datagrams split at every byte boundary are reassembled with their sizes", async () => {
  const far = new Collect();
  handler = (h, s) => {
    expect(h.udpFramed).toBe(true);
    const ch = new StreamDatagrams(s, true);
    ch.attach(far);
    return true;
  };
  const { stream, udpFramed } = await a.openProxyStream("node-c", { protocol: "udp", ip: "10.0.0.1", port: 53 });
  expect(udpFramed).toBe(true);
  const sizes = [0, 1, 2, 300, 1500, 65535];
  const frames = sizes.map((n) => {
    const f = new Uint8Array(2 + n);
    f[0] = n >>> 8;
    f[1] = n & 0xff;
    for (let i = 0; i < n; i++) f[2 + i] = (n + i) & 0xff;
    return f;
  });
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let off = 0;
  for (const f of frames) {
    all.set(f, off);
    off += f.length;
  }
  // Odd chunk sizes so frames and even their 2-byte headers straddle chunks.
  for (let i = 0, step = 1; i < all.length; i += step, step = 1 + ((step * 7 + 3) % 4000)) stream.send(all.slice(i, i + step));
  await until(() => far.got.length === sizes.length);
  expect(far.got.map((d) => d.length)).toEqual(sizes);
  for (const d of far.got) for (let i = 0; i < d.length; i++) if (d[i] !== ((d.length + i) & 0xff)) throw new Error(`byte ${i} of a ${d.length}-byte datagram`);
  stream.abort(new Error("done"));
  await until(() => far.closed);
});

test("our UDP flow to an EdgeMesh peer sends raw datagrams, one per chunk", async () => {
  const farChunks: number[] = [];
  handler = (_h, s) => {
    // An EdgeMesh agent: copies raw stream bytes to its UDP socket and back, no framing.
    s.addEventListener("message", (e: StreamMessageEvent) => {
      for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) {
        farChunks.push(b.length);
        s.send(b.slice());
      }
    });
    return true;
  };
  const { stream } = await a.openProxyStream("node-c", { protocol: "udp", ip: "10.0.0.1", port: 53 });
  const mine = new Collect();
  const ch = new StreamDatagrams(stream, false);
  ch.attach(mine);
  for (const n of [10, 200, 1400]) {
    expect(ch.send(new Uint8Array(n).fill(n & 0xff))).toBe(true);
    await until(() => mine.got.length > 0 && mine.got[mine.got.length - 1]!.length === n);
  }
  expect(farChunks).toEqual([10, 200, 1400]);
  ch.close();
  await until(() => mine.closed);
});

test("an EdgeMesh opener's unframed UDP stream is relayed to the local endpoint and back", async () => {
  handler = (h, s) => inbound.handle({ ...h, udpFramed: false, udpMux: false }, s);
  const { stream } = await a.openProxyStream("node-c", { protocol: "udp", ip: "127.0.0.1", port: echo.port });
  const replies: number[] = [];
  stream.addEventListener("message", (e: StreamMessageEvent) => {
    for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) replies.push(b.length);
  });
  for (const n of [5, 512, 4000]) {
    stream.send(new Uint8Array(n).fill(1));
    await until(() => replies.includes(n));
  }
  expect(replies).toEqual([5, 512, 4000]);
  expect(inbound.udpRelays()).toBe(1);
  stream.abort(new Error("flow over"));
  await until(() => inbound.udpRelays() === 0);
});

test("a UDP CONNECT for an address that is not an endpoint on this node is refused", async () => {
  handler = (h, s) => inbound.handle(h, s);
  await expect(a.openProxyStream("node-c", { protocol: "udp", ip: "127.0.0.1", port: echo.port + 1 })).rejects.toThrow(/refused/);
});

