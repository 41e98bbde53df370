// One remote node's outbound side: packets read from the TUN for its pods wait in a slab of our
// own and leave as one send() per batch on one long-lived CNI stream to its agent.
//
// - The stream is opened on the first packet (and again after it closed); packets wait while it
//   opens. A failed open puts the peer in backoff: its packets are dropped and counted (the
//   routes stay, so a flapping WAN does not churn them) until the next attempt is due.
// - What waits per peer is bounded by PEER_QUEUE_BYTES: our slab's unsent bytes plus what the
//   stream still holds (its writeBufferLength, while the connection wants a 'drain'). Beyond it
//   packets for this peer are dropped and counted; other peers are not affected. Batches go to
//   the stream even while it wants a 'drain' (it queues them and sends on 'drain' itself): a
//   slab's worth of queue (~190 KiB, 3 offload superpackets) dropped 15% of a bulk flow's
//   superpackets, 44 segments each, and the sending pod's TCP halved its window every time.
// - A batch is a view of the slab; a slab is not rewritten while libp2p may hold a view of it: a
//   full one is replaced, and comes back for reuse only once Noise has sealed every byte sent
//   from it (slabs.ts). No allocation per packet. Slabs are not zero-filled: every byte sent was
//   written by a read first.
// - A peer without FEATURE_CNI_VNET (EdgeMesh) gets plain packets: offload frames are converted
//   per batch (offload.ts), the compatibility path.

import type { Stream, StreamCloseEvent } from "@libp2p/interface";
import type { Logger } from "../../log/index.ts";
import { FEATURE_CNI_VNET } from "../../tunnel/constants.ts";
import type { OpenedCniStream } from "../../tunnel/index.ts";
import { OPEN_BACKOFF_INITIAL_MS, OPEN_BACKOFF_MAX_MS, PEER_QUEUE_BYTES, VNET_HDR_BYTES } from "./constants.ts";
import type { CniCounters, PeerCounters } from "./counters.ts";
import { frameLength } from "./frames.ts";
import { framesToPlain, plainBound } from "./offload.ts";
import type { Slab, SlabPool } from "./slabs.ts";
import type { CniTunnel } from "./types.ts";

export interface OutboundContext {
  readonly tunnel: CniTunnel;
  readonly counters: CniCounters;
  readonly log: Logger;
  /** The device carries virtio headers (and so do the frames in our slabs). */
  readonly devVnet: boolean;
  /** Where slabs come from and go back to (one pool per pump). */
  readonly slabs: SlabPool;
  /** Room one read needs (largest frame the device can hand us). */
  readonly room: number;
  now(): number;
}

export class PeerOut {
  /** The current slab's bytes (the pump reads packets straight into it). */
  slab: Uint8Array;
  #cur: Slab;
  /** Queued frames are slab[start, end). */
  start = 0;
  end = 0;
  pendingPackets = 0;
  /** In the pump's list of peers to flush at the end of this read pass. */
  dirty = false;
  gone = false;
  #stream: Stream | null = null;
  #vnet = false;
  #opening = false;
  #failures = 0;
  #retryAt = 0;
  readonly #c: PeerCounters;
  readonly #ctx: OutboundContext;

  constructor(
    readonly node: string,
    ctx: OutboundContext,
  ) {
    this.#ctx = ctx;
    this.#cur = ctx.slabs.take();
    this.slab = this.#cur.buf;
    this.#c = ctx.counters.peer(node);
  }

  /** Whether a read of up to `room` bytes fits at `end`. */
  hasRoom(): boolean {
    return this.slab.length - this.end >= this.#ctx.room;
  }

  /**
   * May one more frame of `n` bytes be queued? False (and counted) when the peer is in backoff
   * or its queue is full. Starts an open when there is no stream. Never replaces the slab while
   * it has room for a read (the pump may have read this frame into it already).
   */
  admit(n: number): boolean {
    // Our side was closed under us (the tunnel moves a relayed stream to a direct connection).
    if (this.#stream !== null && this.#stream.writeStatus !== "writable") this.#closed(undefined);
    const s = this.#stream;
    if (s === null && !this.#opening) {
      if (this.gone || (this.#failures > 0 && this.#ctx.now() < this.#retryAt)) return this.#drop("unreachable", 1);
      this.#open();
    }
    if (this.end - this.start + (s === null ? 0 : s.writeBufferLength) + n > PEER_QUEUE_BYTES) return this.#drop("backpressure", 1);
    if (this.slab.length - this.end < n) {
      // The slab is full: what waits in it goes to the stream (queued there), then a fresh slab.
      // While the stream opens there is nowhere to put it: this packet is dropped.
      if (this.end > this.start) {
        if (s === null) return this.#drop("backpressure", 1);
        this.flush();
      }
      this.#replaceSlab();
    }
    return true;
  }

  /** Copies a frame read elsewhere (scratch, another peer's slab) to the end of the queue. */
  append(buf: Uint8Array, off: number, n: number): void {
    this.slab.set(buf.subarray(off, off + n), this.end);
    this.end += n;
  }

  /** Hands what waits to the stream (which queues it while the connection wants a 'drain'). */
  flush(): void {
    const s = this.#stream;
    if (this.end > this.start && s !== null && s.writeStatus === "writable") {
      const bytes = this.end - this.start;
      try {
        if (this.#vnet || !this.#ctx.devVnet) {
          // Counted first: should send() throw after queueing part of it, the slab never looks done.
          this.#cur.watch.sent += bytes;
          s.send(this.slab.subarray(this.start, this.end));
        } else this.#sendPlain(s); // copies: nothing of the slab is held
        this.#c.txPackets.value += this.pendingPackets;
        this.#c.txBytes.value += bytes;
      } catch {
        this.#dropPending("unreachable"); // the stream is closing; its 'close' follows
      }
      this.start = this.end;
      this.pendingPackets = 0;
    }
    if (this.start === this.end && !this.hasRoom()) this.#replaceSlab();
  }

  /** The slab is spent: back to the pool (reused once sealed), and the next one. */
  #replaceSlab(): void {
    const slabs = this.#ctx.slabs;
    slabs.retire(this.#cur);
    this.#cur = slabs.take();
    this.slab = this.#cur.buf;
    this.start = this.end = 0;
  }

  /** The batch as plain IP packets, for a peer without virtio headers (EdgeMesh). */
  #sendPlain(s: Stream): void {
    let bound = 0;
    for (let off = this.start; off < this.end; ) {
      const n = frameLength(this.slab, off, this.end - off, VNET_HDR_BYTES);
      bound += plainBound(this.slab, off, n);
      off += n;
    }
    const out = new Uint8Array(bound);
    let at = 0;
    for (let off = this.start; off < this.end; ) {
      const n = frameLength(this.slab, off, this.end - off, VNET_HDR_BYTES);
      const r = framesToPlain(this.slab, off, n, out, at);
      if (r === undefined) this.#drop("malformed", 1);
      else at += r.bytes;
      off += n;
    }
    if (at > 0) s.send(out.subarray(0, at));
  }

  handleEvent(evt: Event): void {
    if (evt.type === "close") this.#closed((evt as StreamCloseEvent).error);
  }

  /** The Node is gone: no more packets, close the stream. */
  close(): void {
    this.gone = true;
    this.#dropPending("unreachable");
    const s = this.#stream;
    this.#stream = null;
    if (s !== null) {
      s.removeEventListener("close", this);
      s.close().catch(() => s.abort(new Error("Edge CNI peer removed")));
    }
    this.#ctx.counters.release(this.node);
  }

  #open(): void {
    this.#opening = true;
    const features = this.#ctx.devVnet ? FEATURE_CNI_VNET : 0;
    this.#ctx.tunnel.openCniStream(this.node, features).then(this.#opened, this.#failed);
  }

  readonly #opened = (o: OpenedCniStream): void => {
    this.#opening = false;
    if (this.gone) {
      o.stream.close().catch(() => {});
      return;
    }
    const s = o.stream;
    this.#stream = s;
    this.#vnet = (o.acceptedFeatures & FEATURE_CNI_VNET) !== 0;
    s.addEventListener("close", this);
    this.#ctx.log.info(this.#failures > 0 ? "CNI stream open again" : "CNI stream open", { node: this.node, relayed: o.relayed, offload: this.#vnet });
    this.#failures = 0;
    this.flush();
  };

  readonly #failed = (err: unknown): void => {
    this.#opening = false;
    this.#failures++;
    this.#retryAt = this.#ctx.now() + Math.min(OPEN_BACKOFF_MAX_MS, OPEN_BACKOFF_INITIAL_MS * 2 ** (this.#failures - 1));
    this.#dropPending("unreachable");
    // One line per doubling of the streak, not one per attempt.
    if ((this.#failures & (this.#failures - 1)) === 0 && !this.gone) {
      this.#ctx.log.warn("CNI peer unreachable: packets to its pods are dropped and counted until it answers", {
        node: this.node,
        failures: this.#failures,
        retryInMs: this.#retryAt - this.#ctx.now(),
        error: (err as Error)?.message ?? String(err),
      });
    }
  };

  #closed(error: Error | undefined): void {
    const s = this.#stream;
    if (s !== null) {
      s.removeEventListener("close", this);
    }
    this.#stream = null;
    this.#dropPending("unreachable");
    if (!this.gone) this.#ctx.log.info("CNI stream closed; the next packet opens another", { node: this.node, error: error?.message ?? "" });
    // Half-closed by us (or the tunnel): let the far end finish it once it has read everything.
  }

  #dropPending(reason: "unreachable" | "backpressure"): void {
    if (this.pendingPackets > 0) this.#drop(reason, this.pendingPackets);
    this.start = this.end;
    this.pendingPackets = 0;
  }

  #drop(reason: "unreachable" | "backpressure" | "malformed", packets: number): false {
    this.#ctx.counters.drops[reason].value += packets;
    this.#c.dropped.value += packets;
    return false;
  }
}
