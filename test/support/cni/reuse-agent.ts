// Numbered packets for test/integration/tunnel-cni-reuse.test.ts, and its receiving agent.
// Each packet is filled from its own number, so a packet whose bytes were rewritten while still
// queued (a buffer reused too early) shows up as soon as it is checked.
// Run as a script it is one of the two agents, each a tunnel on loopback and an Edge CNI pump
// with a stand-in device (the test runs both in a namespace with small TCP buffers):
//   bun reuse-agent.ts sink psk|nopsk BYTES
//     "node-b"; its device checks every packet and stalls (not reading) for 30 ms every 8 MB.
//     Prints {"peerId","addrs"} once started, a result line when BYTES have arrived or stdin closes.
//   bun reuse-agent.ts source psk|nopsk PEER_ID ADDRS_JSON
//     "node-a"; its device hands the pump numbered packets as fast as it reads them (driven as the
//     TUN watcher drives the pump). Prints "started", and its counters when stdin closes.
import { compileCni } from "../../../src/control/compile/index.ts";
import type { KubeObject } from "../../../src/control/objects.ts";
import { EMPTY_TABLE, type RouteTable, type TableSource } from "../../../src/control/table.ts";
import { createCniPump, type CniDevice } from "../../../src/hotpath/cni/index.ts";
import { SEAL_POOL_STATS } from "../../../src/tunnel/seal-buffers.ts";
import { createMemoryLogger } from "../../../src/log/index.ts";
import { createMetrics } from "../../../src/metrics/index.ts";
import { stopAllTunnels, testTunnel } from "../tunnels.ts";

export const VNET = 10;
const IP_HDR = 20;

const node = (name: string, cidr: string, ip: string): KubeObject => ({ kind: "Node", metadata: { name }, spec: { podCIDR: cidr }, status: { addresses: [{ type: "InternalIP", address: ip }] } });

/** node-a (10.244.1.0/24) and node-b (10.244.2.0/24) in two segments: they reach each other by tunnel. */
export function tableFor(self: "node-a" | "node-b"): TableSource {
  const all = [node("node-a", "10.244.1.0/24", "192.168.1.11"), node("node-b", "10.244.2.0/24", "192.168.2.11")];
  const ip = self === "node-a" ? "192.168.1.11" : "192.168.2.11";
  const cni = compileCni(new Map(all.map((n) => [`/${n.metadata.name}`, n])), { nodeName: self, cloudCIDR: [], edgeCIDR: [], localSubnets: [`${ip}/24`] }, () => {});
  const t: RouteTable = { ...EMPTY_TABLE, version: 1, cni };
  return { current: () => t, subscribe: () => () => {} };
}

/** Packet `seq`'s IP length: 1,000 to ~64,000 bytes, varying so frames split across chunks everywhere. */
export const sizeOf = (seq: number) => 1000 + ((seq * 7919) % 63_000);

/** Payload word i of packet seq (cheap, different for every packet and position). */
const word = (seq: number, i: number) => (Math.imul(seq + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;

/** Writes packet `seq` (virtio header, IPv4 header to 10.244.2.10, numbered payload) at buf[off..]. */
export function writePacket(buf: Uint8Array, off: number, seq: number): number {
  const ipLen = sizeOf(seq);
  buf.fill(0, off, off + VNET + IP_HDR);
  // Over the MTU: a TSO superpacket (gso_type TCPV4, 1448-byte segments), as a kernel hands them;
  // the receiving pump drops a larger frame without one as oversized.
  if (ipLen > 1500) buf.set([1, 1, 0, 0, 1448 & 0xff, 1448 >> 8], off);
  const ip = off + VNET;
  buf[ip] = 0x45;
  buf[ip + 2] = ipLen >> 8;
  buf[ip + 3] = ipLen & 0xff;
  buf[ip + 9] = 17;
  buf.set([10, 244, 1, 10, 10, 244, 2, 10], ip + 12);
  const dv = new DataView(buf.buffer, buf.byteOffset);
  const p = ip + IP_HDR;
  dv.setUint32(p, seq, true);
  const words = (ipLen - IP_HDR - 4) >> 2;
  for (let i = 0; i < words; i++) dv.setUint32(p + 4 + i * 4, word(seq, i), true);
  for (let k = p + 4 + words * 4; k < ip + ipLen; k++) buf[k] = seq & 0xff;
  return VNET + ipLen;
}

/** Whether buf[off, off+n) is exactly a packet writePacket made; its number (or -1). */
export function checkPacket(buf: Uint8Array, off: number, n: number): number {
  const ip = off + VNET;
  const dv = new DataView(buf.buffer, buf.byteOffset);
  const seq = dv.getUint32(ip + IP_HDR, true);
  const ipLen = (buf[ip + 2]! << 8) | buf[ip + 3]!;
  if (n !== VNET + ipLen || ipLen !== sizeOf(seq)) return -1;
  const p = ip + IP_HDR;
  const words = (ipLen - IP_HDR - 4) >> 2;
  for (let i = 0; i < words; i++) if (dv.getUint32(p + 4 + i * 4, true) !== word(seq, i)) return -1;
  for (let k = p + 4 + words * 4; k < ip + ipLen; k++) if (buf[k] !== (seq & 0xff)) return -1;
  return seq;
}

/** A stand-in TUN that checks every packet written to it, stalling now and then. */
export class Sink implements CniDevice {
  readonly mtu = 1500;
  readonly vnetHdr = true;
  bytes = 0;
  packets = 0;
  lastSeq = -1;
  bad: string[] = [];
  #sinceStall = 0;
  constructor(readonly stallEveryBytes: number, readonly stallMs: number) {}
  read(): number {
    return 0;
  }
  writeSplit(a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): number {
    const joined = new Uint8Array(aLen + bLen);
    joined.set(a.subarray(aOff, aOff + aLen));
    joined.set(b.subarray(bOff, bOff + bLen), aLen);
    this.splits++;
    return this.write(joined, 0, joined.length);
  }
  /** Packets that came in two parts (writeSplit). */
  splits = 0;
  write(buf: Uint8Array, off: number, n: number): number {
    const seq = checkPacket(buf, off, n);
    if ((seq < 0 || seq <= this.lastSeq) && this.bad.length < 5) this.bad.push(`packet #${this.packets}: seq ${seq} after ${this.lastSeq}, ${n} bytes`);
    if (seq >= 0) this.lastSeq = seq;
    this.bytes += n;
    this.packets++;
    this.#sinceStall += n;
    if (this.#sinceStall >= this.stallEveryBytes) {
      this.#sinceStall = 0;
      Bun.sleepSync(this.stallMs); // not reading: windows close, the sender's queues and socket fill
    }
    return n;
  }
  writeWithHead(): number {
    return -5;
  }
  watch() {}
}

/** A stand-in TUN that hands out numbered packets as fast as they are read, until stopped. */
export class Source implements CniDevice {
  readonly mtu = 1500;
  readonly vnetHdr = true;
  next = 0;
  stopped = false;
  onReadable: (() => number) | undefined;
  read(buf: Uint8Array, offset: number, max: number): number {
    if (this.stopped || max < VNET + sizeOf(this.next)) return 0;
    return writePacket(buf, offset, this.next++);
  }
  write(): number {
    return -5;
  }
  writeWithHead(): number {
    return -5;
  }
  writeSplit(): number {
    return -5;
  }
  watch(onReadable: () => number) {
    this.onReadable = onReadable;
  }
}

async function sink(psk: boolean, total: number): Promise<void> {
  const b = testTunnel("node-b", psk ? {} : { psk: undefined });
  await b.tunnel.start();
  const dev = new Sink(8 * 1024 * 1024, 30);
  const metrics = createMetrics();
  const pump = createCniPump({ table: tableFor("node-b"), dev, tunnel: b.tunnel, log: createMemoryLogger(), metrics });
  pump.start();
  console.log(JSON.stringify({ peerId: b.tunnel.peerId, addrs: b.tunnel.addrs() }));
  let done = false;
  let stalled = false;
  const finish = async () => {
    if (done) return;
    done = true;
    const s = metrics.snapshot();
    console.log(JSON.stringify({ bytes: dev.bytes, packets: dev.packets, lastSeq: dev.lastSeq, bad: dev.bad, stalled, splits: dev.splits, malformed: s['cni_dropped_packets_total{reason="malformed"}'] ?? 0, notLocal: s['cni_dropped_packets_total{reason="not_local"}'] ?? 0 }));
    pump.stop();
    await stopAllTunnels();
    process.exit(0);
  };
  // Nothing for 5 s after the first bytes: the connection broke (a corrupted Noise message fails
  // its tag, and the receiver drops the connection). Report rather than wait for the test's timeout.
  let last = 0;
  let lastAt = Date.now();
  setInterval(() => {
    if (dev.bytes !== last) [last, lastAt] = [dev.bytes, Date.now()];
    else if (last > 0 && Date.now() - lastAt > 5000) stalled = true;
    if (dev.bytes >= total || dev.bad.length > 0 || stalled) void finish();
  }, 20);
  process.stdin.on("end", () => void finish());
  process.stdin.resume();
}

async function source(psk: boolean, peerId: string, addrs: string[]): Promise<void> {
  const a = testTunnel("node-a", psk ? {} : { psk: undefined });
  await a.tunnel.start();
  await a.tunnel.addPeer("node-b", peerId, addrs);
  const dev = new Source();
  const metrics = createMetrics();
  const pump = createCniPump({ table: tableFor("node-a"), dev, tunnel: a.tunnel, log: createMemoryLogger(), metrics });
  pump.start();
  let stop = false;
  process.stdin.on("end", () => (stop = true));
  process.stdin.resume();
  console.log("started");
  const backpressure = () => metrics.snapshot()['cni_dropped_packets_total{reason="backpressure"}'] ?? 0;
  const deadline = Date.now() + 100_000; // bounded, whatever the test does
  // Re-poll while packets are read; back off for a millisecond after a pass that dropped packets
  // (the peer's queue was full), as the TUN would be read again only after a wake-up.
  let drops = 0;
  while (!stop && Date.now() < deadline) {
    dev.onReadable!();
    const d = backpressure();
    if (d > drops) {
      drops = d;
      await Bun.sleep(1);
    } else await new Promise((r) => setImmediate(r));
  }
  dev.stopped = true;
  const s = metrics.snapshot();
  console.log(JSON.stringify({ sent: dev.next, drops, slabsReused: s.cni_slabs_reused_total ?? 0, slabsAllocated: s.cni_slabs_allocated_total ?? 0, ...SEAL_POOL_STATS }));
  pump.stop();
  await stopAllTunnels();
  process.exit(0);
}

if (import.meta.main) {
  const [role, mode, a3, a4] = process.argv.slice(2);
  if (role === "sink") await sink(mode === "psk", Number(a3));
  else if (role === "source") await source(mode === "psk", a3!, JSON.parse(a4!) as string[]);
  else throw new Error("usage: reuse-agent.ts sink|source psk|nopsk ...");
}
