// The hot-path rule for multiplexed UDP: no object is made per datagram in our code, either way
// (a flow's datagram framed onto the stream; a DATA frame read off it, copied to a scratch view
// and handed to the flow). The opener runs over a stand-in stream (libp2p allocates per message
// on its own side of send(); that is not ours to count). JSC's heapStats().objectTypeCounts counts
// every cell not yet swept, so between a full GC and the next collection its growth is the number
// of objects made (as bench/macro/heap-probe.ts counts them); a WeakRef to a fresh object tells
// whether a collection spoiled the window. 20,000 datagrams each way must make fewer than 50.
import { expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { createUdpPeers } from "../../src/hotpath/remote/udp-peers.ts";
import { dataFrame, openFrame } from "../../src/hotpath/remote/mux-frames.ts";
import { createMuxInbound } from "../../src/hotpath/remote/mux-inbound.ts";
import { LocalTargets } from "../../src/hotpath/remote/targets.ts";
import { makeTable } from "../integration/proxy-support.ts";
import type { DatagramChannel, DatagramSink } from "../../src/hotpath/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

/** Just enough of a libp2p Stream: open, writable, keeps nothing it is sent. */
class StandInStream {
  status = "open";
  writeStatus = "writable";
  readStatus = "readable";
  remoteWriteStatus = "writable";
  writeBufferLength = 0;
  sent = 0;
  bytes = 0;
  listeners = new Map<string, { handleEvent(e: unknown): void }>();
  addEventListener(type: string, l: { handleEvent(e: unknown): void }): void {
    this.listeners.set(type, l);
  }
  removeEventListener(type: string): void {
    this.listeners.delete(type);
  }
  send(data: { length?: number; byteLength?: number }): boolean {
    this.sent++;
    this.bytes += data.length ?? data.byteLength ?? 0;
    return true;
  }
  abort(): void {
    this.status = "aborted";
    this.listeners.get("close")?.handleEvent({ type: "close" });
  }
}

class Sink implements DatagramSink {
  ch: DatagramChannel | null = null;
  got = 0;
  bytes = 0;
  open(ch: DatagramChannel): void {
    this.ch = ch;
  }
  fail(): void {}
  datagram(d: Uint8Array): void {
    this.got++;
    this.bytes += d.length;
  }
  close(): void {}
}

/** VM bookkeeping cells (shapes, compiled code), not objects a program makes (heap-probe.ts). */
const VM_METADATA = /^(Structure|PropertyTable|StructureRareData|StructureChain|SymbolTable|SparseArrayValueMap|.*CodeBlock.*|.*Executable.*|Unlinked.*)$/;
function cells(): Record<string, number> {
  return { ...heapStats().objectTypeCounts };
}
function made(before: Record<string, number>, after: Record<string, number>): { total: number; byType: Record<string, number> } {
  const byType: Record<string, number> = {};
  let total = 0;
  for (const k of Object.keys(after)) {
    const d = after[k]! - (before[k] ?? 0);
    if (d === 0 || VM_METADATA.test(k)) continue;
    byType[k] = d;
    total += d;
  }
  return { total, byType };
}

/** Objects made by `round(20_000)` beyond an empty window's (the probe's own); undefined if a GC
 * ran in every attempt. */
function measure(round: (n: number) => void): { total: number; byType: Record<string, number> } | undefined {
  const windowOf = (n: number): ReturnType<typeof made> | undefined => {
    Bun.gc(true);
    const sentinel = new WeakRef({});
    const before = cells();
    round(n);
    const after = cells();
    return sentinel.deref() !== undefined ? made(before, after) : undefined; // undefined: a GC ran
  };
  for (let attempt = 0; attempt < 5; attempt++) {
    const idle = windowOf(0);
    const busy = windowOf(20_000);
    if (idle !== undefined && busy !== undefined) return { total: busy.total - idle.total, byType: busy.byType };
  }
  return undefined;
}

test("no object per datagram in our code, to the stream or from it (multiplexed UDP, opener side)", async () => {
  const stream = new StandInStream();
  const peers = createUdpPeers({
    tunnel: { openProxyStream: async () => ({ stream: stream as never, udpFramed: true, udpMux: true, relayed: false }) },
    log: createMemoryLogger(),
    metrics: createMetrics(),
  });
  const sinks = Array.from({ length: 16 }, () => new Sink());
  for (const s of sinks) peers.dial("node-b", "10.244.2.10", 53, s);
  await Bun.sleep(5);
  expect(sinks.every((s) => s.ch !== null)).toBe(true);
  // Replies: one message event per DATA frame, built up front (flow ids 1..16, sizes 1..1400).
  const events = Array.from({ length: 64 }, (_, i) => ({ type: "message", data: dataFrame(1 + (i % 16), new Uint8Array(1 + ((i * 97) % 1400))) }));
  const payloads = Array.from({ length: 64 }, (_, i) => new Uint8Array(1 + ((i * 89) % 1400)));
  const reader = stream.listeners.get("message")!;
  const round = (n: number) => {
    for (let i = 0; i < n; i++) {
      sinks[i & 15]!.ch!.send(payloads[i & 63]!);
      reader.handleEvent(events[i & 63]!);
    }
  };
  round(50_000); // warm up: JIT, shared length headers, scratch views for every size used

  const result = measure(round);
  expect(sinks.reduce((n, s) => n + s.got, 0)).toBeGreaterThanOrEqual(70_000);
  expect(stream.sent).toBeGreaterThanOrEqual(70_000);
  if (result === undefined || result.total >= 50) console.log("objects made:", result?.byType ?? "a GC ran in every window");
  expect(result?.total ?? Infinity).toBeLessThan(50); // 20,000 datagrams each way: not one object per datagram
  peers.stop();
});

test("no object per datagram in our code on the far side: DATA frames to the flows' sockets", async () => {
  let received = 0;
  const endpoint = await Bun.udpSocket({ hostname: "127.0.0.1", socket: { data: () => void received++, error() {} } });
  const stream = new StandInStream();
  const table = makeTable([{ name: "e", protocol: "UDP", port: 53, endpoints: [{ ip: "127.0.0.1", port: endpoint.port, node: "node-c" }] }]);
  const mux = createMuxInbound({ table: { current: () => table, subscribe: () => () => {} }, targets: new LocalTargets("node-c"), idleTimeoutMs: 60_000, log: createMemoryLogger(), metrics: createMetrics() });
  mux.adopt({ protocol: "udp", ip: "127.0.0.1", port: endpoint.port, nodeName: "node-c", remotePeer: "peer-a", udpFramed: true, udpMux: true }, stream as never);
  const reader = stream.listeners.get("message")!;
  for (let f = 1; f <= 16; f++) reader.handleEvent({ type: "message", data: openFrame(f, "127.0.0.1", endpoint.port) });
  await Bun.sleep(50); // the 16 sockets bind
  expect(mux.total).toBe(16);
  const events = Array.from({ length: 64 }, (_, i) => ({ type: "message", data: dataFrame(1 + (i % 16), new Uint8Array(1 + ((i * 97) % 1400))) }));
  const round = (n: number) => {
    for (let i = 0; i < n; i++) reader.handleEvent(events[i & 63]!);
  };
  round(20_000);
  const result = measure(round);
  if (result === undefined || result.total >= 50) console.log("objects made:", result?.byType ?? "a GC ran in every window");
  expect(result?.total ?? Infinity).toBeLessThan(50);
  await Bun.sleep(50);
  expect(received).toBeGreaterThan(0); // the datagrams really went out (loopback may drop some)
  mux.stop();
  endpoint.close();
});