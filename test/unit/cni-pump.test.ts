// The packet pump against a stand-in device and tunnel (the real ones are in
// test/integration/cni-tun.test.ts and the e2e tests): batching, reassembly, malformed input,
// backpressure per peer, unreachable peers with backoff, peers leaving, EdgeMesh-style peers.
import { heapStats } from "bun:jsc";
import { describe, expect, test } from "bun:test";
import { compileCni } from "../../src/control/compile/index.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import { EMPTY_TABLE, type RouteTable, type TableSource } from "../../src/control/table.ts";
import { createCniPump, type CniDevice } from "../../src/hotpath/cni/index.ts";
import { PEER_QUEUE_BYTES } from "../../src/hotpath/cni/constants.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";
import { FEATURE_CNI_VNET } from "../../src/tunnel/constants.ts";
import type { CniHandler, OpenedCniStream } from "../../src/tunnel/index.ts";

const node = (name: string, cidr: string, ip: string): KubeObject => ({ kind: "Node", metadata: { name }, spec: { podCIDR: cidr }, status: { addresses: [{ type: "InternalIP", address: ip }] } });

function table(names: string[]): RouteTable {
  const all = [node("n1", "10.244.1.0/24", "192.168.1.11"), ...names.map((n, i) => node(n, `10.244.${i + 2}.0/24`, `192.168.${i + 2}.11`))];
  const cni = compileCni(new Map(all.map((n) => [`/${n.metadata.name}`, n])), { nodeName: "n1", cloudCIDR: [], edgeCIDR: [], localSubnets: ["192.168.1.11/24"] }, () => {});
  return { ...EMPTY_TABLE, version: 1, cni };
}

class Tables implements TableSource {
  #t: RouteTable;
  #l = new Set<(t: RouteTable) => void>();
  constructor(t: RouteTable) {
    this.#t = t;
  }
  current = () => this.#t;
  subscribe(l: (t: RouteTable) => void) {
    this.#l.add(l);
    return () => this.#l.delete(l);
  }
  set(t: RouteTable) {
    this.#t = t;
    for (const l of this.#l) l(t);
  }
}

/** IPv4 UDP packet to `dst` with `n` payload bytes (a marker in the first one). */
function pkt(dst: string, n = 100, mark = 0): Uint8Array {
  const p = new Uint8Array(28 + n);
  p[0] = 0x45;
  new DataView(p.buffer).setUint16(2, p.length);
  p[9] = 17;
  p.set([10, 244, 1, 10], 12);
  p.set(dst.split(".").map(Number), 16);
  p[28] = mark;
  return p;
}

class FakeDevice implements CniDevice {
  readonly mtu = 1500;
  queue: Uint8Array[] = [];
  written: Uint8Array[] = [];
  onReadable: (() => number) | undefined;
  constructor(readonly vnetHdr: boolean) {}
  push(...packets: Uint8Array[]) {
    for (const p of packets) this.queue.push(this.vnetHdr ? concat(new Uint8Array(10), p) : p);
    this.onReadable!();
  }
  read(buf: Uint8Array, offset: number, max: number): number {
    const p = this.queue.shift();
    if (!p) return 0;
    buf.set(p.subarray(0, max), offset);
    return Math.min(p.length, max);
  }
  write(buf: Uint8Array, offset: number, length: number): number {
    this.written.push(buf.slice(offset, offset + length));
    return length;
  }
  writeWithHead(head: Uint8Array, buf: Uint8Array, offset: number, length: number): number {
    this.written.push(concat(head, buf.subarray(offset, offset + length)));
    return head.length + length;
  }
  writeSplit(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number {
    this.written.push(concat(a.subarray(aOff, aOff + aLen), b.subarray(bOff, bOff + bLen)));
    this.splits++;
    return aLen + bLen;
  }
  /** Packets written from two chunks (writeSplit). */
  splits = 0;
  watch(onReadable: () => number) {
    this.onReadable = onReadable;
  }
}

class FakeStream extends EventTarget {
  sent: Uint8Array[] = [];
  writableNeedsDrain = false;
  /** What a real stream would still hold (sent while it wanted a 'drain'). */
  writeBufferLength = 0;
  writeStatus = "writable";
  status = "open";
  aborted: Error | undefined;
  send(b: Uint8Array) {
    this.sent.push(b.slice());
    if (this.writableNeedsDrain) this.writeBufferLength += b.length;
    return !this.writableNeedsDrain;
  }
  drained() {
    this.writableNeedsDrain = false;
    this.writeBufferLength = 0;
    this.dispatchEvent(new Event("drain"));
  }
  async close() {
    this.status = "closed";
    this.dispatchEvent(new Event("close"));
  }
  abort(err: Error) {
    this.aborted = err;
    this.status = "aborted";
    this.dispatchEvent(new Event("close"));
  }
  message(data: Uint8Array | { bufs: Uint8Array[] }) {
    const e = new Event("message") as Event & { data: unknown };
    e.data = data;
    this.dispatchEvent(e);
  }
}

class FakeTunnel {
  handler: CniHandler | undefined;
  opens: { node: string; features: number; resolve: (o: OpenedCniStream) => void; reject: (e: Error) => void }[] = [];
  autoAccept: number | false = FEATURE_CNI_VNET;
  streams = new Map<string, FakeStream>();
  handleCni(h: CniHandler) {
    this.handler = h;
  }
  openCniStream(node: string, features: number): Promise<OpenedCniStream> {
    return new Promise((resolve, reject) => {
      if (this.autoAccept !== false) {
        const s = new FakeStream();
        this.streams.set(node, s);
        resolve({ stream: s as never, acceptedFeatures: this.autoAccept & features, relayed: false });
      } else this.opens.push({ node, features, resolve, reject });
    });
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function setup(o: { vnet?: boolean; peers?: string[]; now?: () => number } = {}) {
  const dev = new FakeDevice(o.vnet ?? true);
  const tunnel = new FakeTunnel();
  const tables = new Tables(table(o.peers ?? ["n2", "n3"]));
  const metrics = createMetrics();
  const log = createMemoryLogger();
  const pump = createCniPump({ table: tables, dev, tunnel, log, metrics, now: o.now });
  pump.start();
  return { dev, tunnel, tables, metrics, log, pump };
}

const val = (m: MetricsRegistry, series: string) => m.snapshot()[series] ?? 0;
const tick = () => new Promise((r) => setTimeout(r, 0));

describe("CNI pump: TUN -> peers", () => {
  test("packets for a peer read in one wake-up leave as one batch, in order", async () => {
    const { dev, tunnel, metrics } = setup();
    dev.push(pkt("10.244.2.10", 100, 1), pkt("10.244.2.11", 200, 2), pkt("10.244.2.12", 300, 3));
    await tick();
    // The first packet opened the stream; what waited meanwhile went out once it was open.
    const s = tunnel.streams.get("n2")!;
    expect(s.sent).toHaveLength(1);
    const batch = s.sent[0]!;
    expect(batch.length).toBe(3 * 10 + 128 + 228 + 328);
    expect([batch[10 + 28], batch[138 + 10 + 28], batch[138 + 238 + 10 + 28]]).toEqual([1, 2, 3]);
    dev.push(pkt("10.244.2.10"), pkt("10.244.3.10"), pkt("10.244.2.10"));
    expect(s.sent).toHaveLength(2); // the stream was open: at once
    await tick(); // n3's opens now
    expect(tunnel.streams.get("n3")!.sent).toHaveLength(1);
    expect(val(metrics, 'cni_tx_packets_total{peer="n2"}')).toBe(5);
  });

  test("a packet for no tunneled CIDR is dropped and counted (no_route)", () => {
    const { dev, tunnel, metrics } = setup();
    dev.push(pkt("10.244.1.77"), pkt("8.8.8.8"));
    expect(tunnel.streams.size).toBe(0);
    expect(val(metrics, 'cni_dropped_packets_total{reason="no_route"}')).toBe(2);
  });

  test("a pass tells the device how many packets it read (0 re-arms the watcher)", async () => {
    const { dev } = setup();
    dev.queue.push(pkt("10.244.2.10"), pkt("8.8.8.8"), pkt("10.244.3.10"));
    expect(dev.onReadable!()).toBe(3); // the unroutable one was read (and dropped) too
    expect(dev.onReadable!()).toBe(0);
  });

  test("backpressure is per peer: a stalled peer queues up to PEER_QUEUE_BYTES, then drops; another peer's go on", async () => {
    const { dev, tunnel, metrics } = setup();
    dev.push(pkt("10.244.2.10"), pkt("10.244.3.10"));
    await tick();
    const n2 = tunnel.streams.get("n2")!;
    n2.writableNeedsDrain = true;
    // 2 MiB of 1.4 KB packets (~1500) wait, in the stream and our slab; the rest are dropped.
    for (let i = 0; i < 200; i++) dev.push(...Array.from({ length: 10 }, () => pkt("10.244.2.10", 1372)), pkt("10.244.3.10"));
    const dropped = val(metrics, 'cni_dropped_packets_total{reason="backpressure"}');
    expect(dropped).toBeGreaterThan(400);
    expect(dropped).toBeLessThan(600);
    expect(n2.writeBufferLength).toBeLessThanOrEqual(PEER_QUEUE_BYTES);
    expect(n2.writeBufferLength).toBeGreaterThan(PEER_QUEUE_BYTES - 300 * 1024);
    expect(tunnel.streams.get("n3")!.sent.length).toBeGreaterThanOrEqual(200);
    expect(val(metrics, 'cni_peer_dropped_packets_total{peer="n3"}')).toBe(0);
    // Every queued packet went to the stream (which holds them until its connection drains).
    expect(val(metrics, 'cni_tx_packets_total{peer="n2"}')).toBe(1 + 2000 - dropped);
    n2.drained();
    const before = n2.sent.length;
    dev.push(pkt("10.244.2.10"));
    expect(n2.sent.length).toBe(before + 1);
    expect(val(metrics, 'cni_dropped_packets_total{reason="backpressure"}')).toBe(dropped);
  });

  test("an unreachable peer: packets dropped and counted, one open per backoff period, then it answers", async () => {
    let now = 1_000_000;
    const { dev, tunnel, metrics, log } = setup({ now: () => now });
    tunnel.autoAccept = false;
    dev.push(pkt("10.244.2.10"), pkt("10.244.2.10"));
    expect(tunnel.opens).toHaveLength(1);
    tunnel.opens[0]!.reject(new Error("no route to peer"));
    await tick();
    expect(val(metrics, 'cni_dropped_packets_total{reason="unreachable"}')).toBe(2);
    dev.push(pkt("10.244.2.10"));
    expect(tunnel.opens).toHaveLength(1); // in backoff: no new attempt
    expect(val(metrics, 'cni_dropped_packets_total{reason="unreachable"}')).toBe(3);
    expect(log.lines.some((l) => l.includes("CNI peer unreachable") && l.includes("node=n2"))).toBe(true);
    now += 1001;
    dev.push(pkt("10.244.2.10", 10, 9));
    expect(tunnel.opens).toHaveLength(2);
    const s = new FakeStream();
    tunnel.opens[1]!.resolve({ stream: s as never, acceptedFeatures: FEATURE_CNI_VNET, relayed: true });
    await tick();
    expect(s.sent).toHaveLength(1);
    expect(s.sent[0]![10 + 28]).toBe(9);
  });

  test("a stream that closes is reopened by the next packet", async () => {
    const { dev, tunnel } = setup();
    dev.push(pkt("10.244.2.10"));
    await tick();
    const first = tunnel.streams.get("n2")!;
    await first.close();
    dev.push(pkt("10.244.2.10"));
    await tick();
    expect(tunnel.streams.get("n2")).not.toBe(first);
    expect(tunnel.streams.get("n2")!.sent).toHaveLength(1);
  });

  test("a peer whose Node is gone: its stream is closed, its packets have no route", async () => {
    const { dev, tunnel, tables, metrics } = setup();
    dev.push(pkt("10.244.2.10"));
    await tick();
    const s = tunnel.streams.get("n2")!;
    tables.set(table(["n9", "n3"]));
    expect(s.status).toBe("closed");
    dev.push(pkt("10.244.2.10"));
    // 10.244.2.0/24 now belongs to n9.
    await tick();
    expect(tunnel.streams.get("n9")!.sent).toHaveLength(1);
    expect(metrics.snapshot()['cni_tx_packets_total{peer="n2"}']).toBeUndefined();
  });

  test("a peer without virtio headers (EdgeMesh) gets plain packets", async () => {
    const { dev, tunnel } = setup();
    tunnel.autoAccept = 0 as const;
    dev.push(pkt("10.244.2.10", 50, 5), pkt("10.244.2.10", 60, 6));
    await tick();
    const sent = tunnel.streams.get("n2")!.sent;
    expect(sent).toHaveLength(1);
    expect(sent[0]!.length).toBe(78 + 88);
    expect([sent[0]![28], sent[0]![78 + 28]]).toEqual([5, 6]);
  });

  test("a device without offload offers no virtio headers and sends plain packets", async () => {
    const { dev, tunnel } = setup({ vnet: false });
    dev.push(pkt("10.244.2.10", 50, 5));
    await tick();
    expect(tunnel.streams.get("n2")!.sent[0]!.length).toBe(78);
  });

  test("a bulk flow allocates per batch, not per packet", async () => {
    const { dev, tunnel } = setup();
    dev.push(pkt("10.244.2.10"));
    await tick();
    const packets = Array.from({ length: 256 }, () => concat(new Uint8Array(10), pkt("10.244.2.10", 1400)));
    const s = tunnel.streams.get("n2")!;
    s.send = () => true; // the stand-in's own copy would be counted otherwise
    const run = () => {
      for (let i = 0; i < 20; i++) {
        for (const p of packets) dev.queue.push(p);
        dev.onReadable!();
      }
    };
    run(); // warm up (JIT, slabs)
    Bun.gc(true);
    const before = heapStats().objectCount;
    run();
    const objects = heapStats().objectCount - before;
    // 5120 packets in 20 passes; each pass sends ~8 batches (a view each, at FLUSH_BYTES) and
    // replaces a slab every 256 KiB.
    expect(objects / 5120).toBeLessThan(0.2);
  });
});

describe("CNI pump: peers -> TUN", () => {
  /** With a virtio header: a packet over the MTU is a TSO superpacket (gso_type TCPV4, 1448-byte segments), as a peer's kernel hands them. */
  const frame = (p: Uint8Array, vnet: boolean) => {
    if (!vnet) return p;
    const f = concat(new Uint8Array(10), p);
    if (p.length > 1500) f.set([1, 1, 0, 0, 1448 & 0xff, 1448 >> 8], 0);
    return f;
  };
  function inbound(o: { vnet?: boolean; offer?: number } = {}) {
    const env = setup({ vnet: o.vnet ?? true });
    const s = new FakeStream();
    const accepted = env.tunnel.handler!({ remotePeer: "12D3Koo", remoteNode: "n2", nodeName: "n1", features: o.offer ?? FEATURE_CNI_VNET }, s as never);
    return { ...env, s, accepted };
  }

  test("virtio headers are accepted when both sides have them; frames are written whole", () => {
    const { s, dev, accepted, metrics } = inbound();
    expect(accepted).toBe(FEATURE_CNI_VNET);
    const a = frame(pkt("10.244.1.10", 100, 1), true);
    const b = frame(pkt("10.244.1.11", 200, 2), true);
    s.message(concat(a, b));
    expect(dev.written).toEqual([a, b]);
    expect(val(metrics, 'cni_rx_packets_total{peer="n2"}')).toBe(2);
  });

  test("a frame split over several chunks (even inside its length field) arrives whole", () => {
    const { s, dev } = inbound();
    const a = frame(pkt("10.244.1.10", 3000, 7), true);
    const all = concat(a, a);
    s.message({ bufs: [all.subarray(0, 11), all.subarray(11, 13), all.subarray(13, 2000)] });
    s.message(all.subarray(2000, 4000));
    s.message(all.subarray(4000));
    expect(dev.written).toEqual([a, a]);
  });

  test("a frame split across two chunks is written from both with one writev, no copy; one whose IP header is split, or spread over three chunks, is reassembled", () => {
    const { s, dev, metrics } = inbound();
    const a = frame(pkt("10.244.1.10", 3000, 1), true);
    const b = frame(pkt("10.244.1.11", 5000, 2), true);
    const c = frame(pkt("10.244.1.12", 4000, 3), true);
    // a whole, b split at 1000 (its headers in the first part), then c split at 5 (inside its
    // virtio header), then b again across three chunks.
    const all = concat(a, b, c, b);
    const at = [a.length + 1000, a.length + b.length + 5, a.length + b.length + c.length + 100, a.length + b.length + c.length + 2000];
    s.message(all.subarray(0, at[0]));
    s.message(all.subarray(at[0], at[1]));
    expect(dev.splits).toBe(1); // b: from both chunks
    s.message(all.subarray(at[1], at[2]));
    s.message(all.subarray(at[2], at[3]));
    s.message(all.subarray(at[3]));
    expect(dev.written).toEqual([a, b, c, b]);
    expect(dev.splits).toBe(1); // c (header split) and the last b (three chunks) were copied
    expect(val(metrics, 'cni_rx_bytes_total{peer="n2"}')).toBe(all.length - 4 * 10);
  });

  test("plain frames from EdgeMesh get a zero virtio header on an offloading device", () => {
    const { s, dev, accepted } = inbound({ offer: 0 });
    expect(accepted).toBe(0);
    const p = pkt("10.244.1.10", 20);
    s.message(p);
    expect(dev.written).toEqual([concat(new Uint8Array(10), p)]);
  });

  test("a packet for an address that is not one of our pods is dropped and counted", () => {
    const { s, dev, metrics } = inbound();
    s.message(frame(pkt("192.168.1.11"), true));
    expect(dev.written).toEqual([]);
    expect(val(metrics, 'cni_dropped_packets_total{reason="not_local"}')).toBe(1);
  });

  test("an oversized frame from an offloading peer is dropped and counted, and the stream goes on", () => {
    const { s, dev, metrics } = inbound();
    const vframe = (p: Uint8Array, gso: number, size: number) => {
      const f = frame(p, true);
      f[0] = 1; // NEEDS_CSUM, as the kernel sets it for TSO
      f[1] = gso;
      f[4] = size & 0xff;
      f[5] = size >> 8;
      return f;
    };
    const ok = [frame(pkt("10.244.1.10", 1472, 1), true), vframe(pkt("10.244.1.10", 60000, 2), 1, 1448), vframe(pkt("10.244.1.10", 60000, 3), 0x81, 1460)];
    const bad = [
      concat(new Uint8Array(10), pkt("10.244.1.10", 1473, 4)), // 1501 bytes: one packet over the MTU, no segmentation asked for
      vframe(pkt("10.244.1.10", 60000, 5), 1, 1461), // segments that would be 1501 bytes
      vframe(pkt("10.244.1.10", 9000, 6), 1, 8960),
    ];
    s.message(concat(bad[0]!, ok[0]!, bad[1]!, ok[1]!, bad[2]!, ok[2]!));
    expect(dev.written).toEqual(ok);
    expect(s.aborted).toBeUndefined();
    expect(val(metrics, 'cni_dropped_packets_total{reason="oversized"}')).toBe(3);
    expect(val(metrics, 'cni_peer_dropped_packets_total{peer="n2"}')).toBe(3);
    expect(val(metrics, 'cni_rx_packets_total{peer="n2"}')).toBe(3);
  });

  test("a segmentation type we never offer (UDP) is dropped as malformed; the stream goes on", () => {
    const { s, dev, metrics } = inbound();
    const udp = frame(pkt("10.244.1.10", 3000, 1), true);
    udp[0] = 0;
    udp[1] = 3; // VIRTIO_NET_HDR_GSO_UDP
    udp[4] = 1400 & 0xff;
    udp[5] = 1400 >> 8;
    const good = frame(pkt("10.244.1.10", 200, 2), true);
    s.message(concat(udp, good));
    expect(dev.written).toEqual([good]);
    expect(s.aborted).toBeUndefined();
    expect(val(metrics, 'cni_dropped_packets_total{reason="malformed"}')).toBe(1);
  });

  test("plain frames (EdgeMesh) are not held to our MTU: a peer's device may have another", () => {
    const { s, dev, metrics } = inbound({ offer: 0 });
    const p = pkt("10.244.1.10", 9000);
    s.message(p);
    expect(dev.written).toEqual([concat(new Uint8Array(10), p)]);
    expect(val(metrics, 'cni_dropped_packets_total{reason="oversized"}')).toBe(0);
  });

  test("a malformed frame resets the stream and is counted; nothing reaches the device", () => {
    const { s, dev, metrics } = inbound({ offer: 0 });
    s.message(new Uint8Array([0x75, 0, 0, 40, 1, 2, 3]));
    expect(s.aborted?.message).toContain("malformed");
    expect(dev.written).toEqual([]);
    expect(val(metrics, 'cni_dropped_packets_total{reason="malformed"}')).toBe(1);
  });
});
