// The Edge CNI packet pump: TUN -> one CNI stream per peer, and CNI streams -> TUN.
//
// TUN -> peers: when the watcher says packets wait, read them one by one (a read returns one
// packet, or one offload superpacket with its virtio header), find the destination's peer in the
// table's prefix lookup, and queue the frame in that peer's slab (outbound.ts). A read goes
// straight into the slab of the peer the previous packet was for, so a bulk flow is never
// copied; a packet for another peer is copied once. At the end of the pass (or at FLUSH_BYTES)
// each touched peer sends its batch as one view. No await, no closure and no allocation per
// packet; the table is read once per pass.
//
// peers -> TUN: every accepted inbound stream gets a StreamIn (inbound.ts).

import type { Stream } from "@libp2p/interface";
// Values from the files themselves, not control/index.ts: that would load the config parser.
import { parseCidr4 } from "../../control/compile/cidr.ts";
import { cniPeerIndex, type CniPrefix, type RouteTable, type TableSource } from "../../control/table.ts";
import type { Logger } from "../../log/index.ts";
import type { Counter, MetricsRegistry } from "../../metrics/index.ts";
import { FEATURE_CNI_VNET } from "../../tunnel/constants.ts";
import type { CniHeader } from "../../tunnel/index.ts";
import { FLUSH_BYTES, MAX_FRAME_BYTES, MAX_PACKETS_PER_WAKE, SLAB_BYTES_OFFLOAD, SLAB_BYTES_PLAIN, VNET_HDR_BYTES } from "./constants.ts";
import { CniCounters } from "./counters.ts";
import { ipv4Destination } from "./frames.ts";
import { StreamIn } from "./inbound.ts";
import { PeerOut, type OutboundContext } from "./outbound.ts";
import { SlabPool } from "./slabs.ts";
import type { CniDevice, CniTunnel } from "./types.ts";

export interface CniPumpOptions {
  table: TableSource;
  dev: CniDevice;
  tunnel: CniTunnel;
  log: Logger;
  metrics: MetricsRegistry;
  now?: () => number;
}

export interface CniPump {
  /** Registers the inbound handler (call before the tunnel starts) and starts reading. */
  start(): void;
  /** Closes every CNI stream; the device is closed by its owner. */
  stop(): void;
}

export function createCniPump(o: CniPumpOptions): CniPump {
  return new Pump(o);
}

class Pump implements CniPump {
  readonly #o: CniPumpOptions;
  readonly #counters: CniCounters;
  readonly #ctx: OutboundContext;
  readonly #hdr: number;
  readonly #room: number;
  readonly #scratch: Uint8Array;
  /** Peers by node name; `#peers[i]` is the table's cni.peers[i]. */
  readonly #byNode = new Map<string, PeerOut>();
  #peers: PeerOut[] = [];
  #lookup: readonly CniPrefix[] = [];
  /** This node's pod CIDRs as (network, mask) pairs: the only destinations inbound may reach. */
  #local: number[] = [];
  #hint: PeerOut | null = null;
  readonly #dirty: PeerOut[] = [];
  readonly #inbound = new Set<StreamIn>();
  #unsubscribe: (() => void) | undefined;
  readonly #wakeups: Counter;
  readonly #reads: Counter;
  #stopped = false;

  constructor(o: CniPumpOptions) {
    this.#o = o;
    this.#counters = new CniCounters(o.metrics);
    this.#hdr = o.dev.vnetHdr ? VNET_HDR_BYTES : 0;
    // Without offload the device never hands us more than an MTU.
    this.#room = o.dev.vnetHdr ? MAX_FRAME_BYTES : o.dev.mtu + 64;
    this.#scratch = new Uint8Array(this.#room);
    this.#ctx = {
      tunnel: o.tunnel,
      counters: this.#counters,
      log: o.log,
      devVnet: o.dev.vnetHdr,
      slabs: new SlabPool(o.dev.vnetHdr ? SLAB_BYTES_OFFLOAD : SLAB_BYTES_PLAIN),
      room: this.#room,
      now: o.now ?? Date.now,
    };
    o.metrics.gaugeFn("cni_peers", "Remote nodes whose pod CIDRs go through the tunnel", () => this.#peers.length);
    this.#wakeups = o.metrics.counter("cni_tun_wakeups_total", "Times the TUN watcher woke the pump (packets read per wake-up = batching)");
    this.#reads = o.metrics.counter("cni_tun_reads_total", "Packets read from the TUN device");
    const slabs = this.#ctx.slabs;
    o.metrics.counterFn("cni_slabs_allocated_total", "Outbound slabs allocated so far (the rest were reused once the tunnel had sealed them)", () => slabs.allocated);
    o.metrics.counterFn("cni_slabs_reused_total", "Outbound slabs reused after the tunnel had sealed every byte sent from them", () => slabs.reused);
  }

  start(): void {
    this.#o.tunnel.handleCni(this.#accept);
    this.#unsubscribe = this.#o.table.subscribe((t) => this.#onTable(t));
    this.#onTable(this.#o.table.current());
    this.#o.dev.watch(this.#drain);
  }

  stop(): void {
    this.#stopped = true;
    this.#unsubscribe?.();
    for (const p of this.#byNode.values()) p.close();
    this.#byNode.clear();
    this.#peers = [];
    this.#lookup = [];
    for (const s of this.#inbound) s.close();
    this.#inbound.clear();
    this.#ctx.slabs.clear();
  }

  /** A table was published: rebuild the peer list (keeping each node's state) and the lookup. */
  #onTable(t: RouteTable): void {
    if (this.#stopped) return;
    const cni = t.cni;
    const next: PeerOut[] = [];
    const keep = new Set<string>();
    for (const peer of cni?.peers ?? []) {
      let p = this.#byNode.get(peer.node);
      if (!p) this.#byNode.set(peer.node, (p = new PeerOut(peer.node, this.#ctx)));
      next.push(p);
      keep.add(peer.node);
    }
    // A node whose Node object is gone (not one that is merely unreachable) loses its state.
    for (const [node, p] of this.#byNode) {
      if (keep.has(node)) continue;
      p.close();
      this.#byNode.delete(node);
      if (this.#hint === p) this.#hint = null;
    }
    this.#peers = next;
    this.#lookup = cni?.lookup ?? [];
    const local: number[] = [];
    for (const text of cni?.localPodCIDRs ?? []) {
      const c = parseCidr4(text);
      if (c) local.push(c.net, c.bits === 0 ? 0 : (0xffff_ffff << (32 - c.bits)) >>> 0);
    }
    this.#local = local;
  }

  /** The watcher says packets wait: read them all (up to a budget), then send the batches. */
  readonly #drain = (): number => {
    const dev = this.#o.dev;
    const hdr = this.#hdr;
    const room = this.#room;
    const peers = this.#peers;
    const lookup = this.#lookup;
    const drops = this.#counters.drops;
    let hint = this.#hint;
    this.#wakeups.value++;
    let i = 0;
    for (; i < MAX_PACKETS_PER_WAKE; i++) {
      const direct = hint !== null && hint.hasRoom();
      const buf = direct ? hint!.slab : this.#scratch;
      const off = direct ? hint!.end : 0;
      const n = dev.read(buf, off, room);
      if (n <= 0) {
        if (n < 0) this.#readError(n);
        break;
      }
      const ip = off + hdr;
      if (n < hdr + 20 || buf[ip]! >> 4 !== 4) {
        drops.no_route.value++; // IPv6 (the device's own router solicitations) or a runt
        continue;
      }
      const index = cniPeerIndex(lookup, ipv4Destination(buf, ip));
      if (index < 0) {
        drops.no_route.value++; // a route the table no longer has (routes catch up within ms)
        continue;
      }
      const p = peers[index]!;
      if (!p.admit(n)) continue;
      if (direct && p === hint) p.end += n;
      else p.append(buf, off, n);
      p.pendingPackets++;
      if (!p.dirty) {
        p.dirty = true;
        this.#dirty.push(p);
      }
      if (p.end - p.start >= FLUSH_BYTES) p.flush();
      hint = p;
    }
    this.#reads.value += i;
    this.#readCount = i;
    this.#hint = hint;
    const dirty = this.#dirty;
    for (let i = 0; i < dirty.length; i++) {
      const p = dirty[i]!;
      p.dirty = false;
      p.flush();
    }
    dirty.length = 0;
    return this.#readCount;
  };

  /** Packets read by the last pass (returned through the device's watch callback). */
  #readCount = 0;
  #readErrors = 0;
  #readError(n: number): void {
    this.#readErrors++;
    if ((this.#readErrors & (this.#readErrors - 1)) === 0) this.#o.log.error("reading the TUN device failed", { errno: -n, times: this.#readErrors });
  }

  /** An inbound CNI stream: accept with virtio headers when both sides have them. */
  readonly #accept = (header: CniHeader, stream: Stream): number | false => {
    if (this.#stopped) return false;
    const vnet = this.#o.dev.vnetHdr && (header.features & FEATURE_CNI_VNET) !== 0;
    const s = new StreamIn(stream, header.remoteNode ?? "unknown", vnet, { dev: this.#o.dev, counters: this.#counters, isLocal: this.#isLocal });
    this.#inbound.add(s);
    stream.addEventListener("close", () => this.#inbound.delete(s), { once: true });
    return vnet ? FEATURE_CNI_VNET : 0;
  };

  readonly #isLocal = (ip: number): boolean => {
    const l = this.#local;
    for (let i = 0; i < l.length; i += 2) if (((ip & l[i + 1]!) >>> 0) === l[i]) return true;
    return false;
  };
}

