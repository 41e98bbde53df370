// One inbound CNI stream: frames from a peer's agent written into the TUN, one write per
// packet (or per offload superpacket) straight from the buffers libp2p hands us. A frame split
// across two chunks (most 64 KiB superpackets: Noise messages and socket reads do not line up
// with frames) is written from both with one writev: its first part is held by reference (the
// chunks are ours once delivered: fresh socket buffers, decrypted in place, never rewritten).
// Only a frame spread over three or more chunks, or whose IP header is itself split, is copied,
// into this stream's reassembly buffer (allocated the first time that happens). A packet not addressed to this node's pods, or a malformed frame, is
// dropped and counted; a frame whose length cannot be read also resets the stream (its framing
// is lost). A frame with a virtio header (from our agents) that is larger than the MTU, or whose
// segments would be, or that asks for a segmentation we never offer, is dropped and counted
// ("oversized", "malformed") and the stream goes on.
// The stream is read-only: nothing is ever written back (EdgeMesh's sender does not read).

import type { Stream, StreamMessageEvent } from "@libp2p/interface";
import { MAX_FRAME_BYTES, VNET_HDR_BYTES } from "./constants.ts";
import type { CniCounters, PeerCounters } from "./counters.ts";
import { frameLength, ipv4Destination } from "./frames.ts";
import type { CniDevice } from "./types.ts";

/** virtio_net_hdr gso_type values a peer's kernel hands its agent (we offer TSO4/6 only); ECN bit aside. */
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_TCPV6 = 4;
const GSO_ECN = 0x80;
/** The smallest IPv4 + TCP headers: a segment's payload (gso_size) leaves at least this much of the MTU. */
const MIN_TCP4_HEADERS = 40;

/** A zero virtio header, written in front of plain packets when the device expects one. */
const ZERO_HDR = new Uint8Array(VNET_HDR_BYTES);
const MALFORMED = new Error("malformed Edge CNI frame");

export interface InboundContext {
  readonly dev: CniDevice;
  readonly counters: CniCounters;
  /** Is this IPv4 address one of this node's pods? (Read per packet; no allocation.) */
  isLocal(ip: number): boolean;
}

/** What libp2p puts in a 'message' event: a Uint8Array or a Uint8ArrayList (its `bufs`). */
interface ListFields {
  bufs: Uint8Array[];
}

export class StreamIn {
  #stream: Stream | null;
  #partial: Uint8Array | null = null;
  #have = 0;
  #need = 0;
  /** The first part of a frame split across two chunks, held by reference (#need is its length). */
  #held: Uint8Array | null = null;
  #heldOff = 0;
  #heldLen = 0;
  readonly #hdr: number;
  readonly #ctx: InboundContext;
  readonly #c: PeerCounters;
  readonly #node: string;

  /** `vnet`: the frames carry virtio headers (negotiated; only when the device has them too). */
  constructor(stream: Stream, node: string, vnet: boolean, ctx: InboundContext) {
    this.#stream = stream;
    this.#node = node;
    this.#hdr = vnet ? VNET_HDR_BYTES : 0;
    this.#ctx = ctx;
    this.#c = ctx.counters.peer(node);
    stream.addEventListener("message", this);
    stream.addEventListener("close", this);
    stream.addEventListener("remoteCloseWrite", this);
  }

  handleEvent(evt: Event): void {
    if (evt.type === "message") {
      const data = (evt as StreamMessageEvent).data as unknown as Uint8Array | ListFields;
      if (data instanceof Uint8Array) this.#consume(data);
      else {
        const bufs = data.bufs;
        for (let i = 0; i < bufs.length && this.#stream !== null; i++) this.#consume(bufs[i]!);
      }
    } else if (evt.type === "close") this.#release();
    else if (evt.type === "remoteCloseWrite") {
      // The sender is done with this stream (it moved, or stopped): so are we; we never write.
      const s = this.#stream;
      this.#release();
      s?.close().catch(() => s.abort(new Error("Edge CNI stream end")));
    }
  }

  /** Stop reading (the agent stops). */
  close(): void {
    const s = this.#stream;
    if (s === null) return;
    this.#release();
    s.abort(new Error("Edge CNI stopped"));
  }

  #consume(buf: Uint8Array): void {
    const hdr = this.#hdr;
    const len = buf.length;
    let off = 0;
    const held = this.#held;
    if (held !== null) {
      this.#held = null;
      const rest = this.#need - this.#heldLen;
      if (rest <= len) {
        this.#deliver(held, this.#heldOff, this.#heldLen, buf, 0, rest);
        this.#need = 0;
        off = rest;
      } else {
        // Three chunks or more: reassemble by copying after all.
        this.#partial ??= new Uint8Array(MAX_FRAME_BYTES);
        this.#partial.set(held.subarray(this.#heldOff, this.#heldOff + this.#heldLen), 0);
        this.#have = this.#heldLen;
      }
    }
    while (off < len) {
      if (this.#have > 0) {
        const p = this.#partial!;
        if (this.#need === 0) {
          // Enough of the frame to read the IP length field (IPv4 at 2, IPv6 at 4).
          const take = Math.min(hdr + 6 - this.#have, len - off);
          p.set(buf.subarray(off, off + take), this.#have);
          this.#have += take;
          off += take;
          const n = frameLength(p, 0, this.#have, hdr);
          if (n < 0 || n > MAX_FRAME_BYTES) return this.#malformed();
          if (n === 0) continue;
          this.#need = n;
        }
        const take = Math.min(this.#need - this.#have, len - off);
        p.set(buf.subarray(off, off + take), this.#have);
        this.#have += take;
        off += take;
        if (this.#have === this.#need) {
          this.#deliver(p, 0, this.#need, p, 0, 0);
          this.#have = 0;
          this.#need = 0;
        }
        continue;
      }
      const n = frameLength(buf, off, len - off, hdr);
      if (n < 0 || n > MAX_FRAME_BYTES) return this.#malformed();
      if (n !== 0 && off + n > len && len - off >= hdr + 20 && (hdr !== 0 || !this.#ctx.dev.vnetHdr)) {
        // Split across chunks, its IP header here: hold this part, the next chunk completes it.
        this.#held = buf;
        this.#heldOff = off;
        this.#heldLen = len - off;
        this.#need = n;
        return;
      }
      if (n === 0 || off + n > len) {
        // Split across chunks: keep what is here, the rest completes it.
        this.#partial ??= new Uint8Array(MAX_FRAME_BYTES);
        this.#partial.set(buf.subarray(off, len), 0);
        this.#have = len - off;
        this.#need = n;
        return;
      }
      this.#deliver(buf, off, n, buf, 0, 0);
      off += n;
    }
  }

  /**
   * One frame: buf[off, off+n), followed by more[moreOff, moreOff+moreLen) when split (then the
   * first part holds at least the virtio and IP headers, and the device needs no ZERO_HDR).
   */
  #deliver(buf: Uint8Array, off: number, n: number, more: Uint8Array, moreOff: number, moreLen: number): void {
    const ip = off + this.#hdr;
    const ctx = this.#ctx;
    if (n + moreLen - this.#hdr < 20 || buf[ip]! >> 4 !== 4 || !ctx.isLocal(ipv4Destination(buf, ip))) {
      ctx.counters.drops.not_local.value++;
      this.#c.dropped.value++;
      return;
    }
    const dev = ctx.dev;
    if (this.#hdr !== 0) {
      // Our agents' frames: what their kernel handed them, so never more than our MTU per packet
      // or per segment (the TUN would take such a packet and the node forward it, fragmented or
      // refused, far from here). An unknown segmentation type (we offer TSO only) is malformed;
      // the stream's framing is intact, so only this frame goes.
      const gso = buf[off + 1]! & ~GSO_ECN;
      const size = buf[off + 4]! | (buf[off + 5]! << 8);
      if (gso !== GSO_NONE && gso !== GSO_TCPV4 && gso !== GSO_TCPV6) return this.#drop("malformed");
      if (gso === GSO_NONE ? n + moreLen - this.#hdr > dev.mtu : size + MIN_TCP4_HEADERS > dev.mtu) return this.#drop("oversized");
    }
    const r =
      moreLen > 0
        ? dev.writeSplit(buf, off, n, more, moreOff, moreLen)
        : this.#hdr !== 0 || !dev.vnetHdr
          ? dev.write(buf, off, n)
          : dev.writeWithHead(ZERO_HDR, buf, off, n);
    if (r < 0) {
      ctx.counters.drops.write_error.value++;
      this.#c.dropped.value++;
      return;
    }
    this.#c.rxPackets.value++;
    this.#c.rxBytes.value += n + moreLen - this.#hdr;
  }

  #drop(reason: "malformed" | "oversized"): void {
    this.#ctx.counters.drops[reason].value++;
    this.#c.dropped.value++;
  }

  #malformed(): void {
    this.#ctx.counters.drops.malformed.value++;
    this.#c.dropped.value++;
    const s = this.#stream;
    this.#release();
    s?.abort(MALFORMED);
  }

  #release(): void {
    const s = this.#stream;
    if (s === null) return;
    this.#stream = null;
    s.removeEventListener("message", this);
    s.removeEventListener("close", this);
    s.removeEventListener("remoteCloseWrite", this);
    this.#partial = null;
    this.#held = null;
    this.#ctx.counters.release(this.#node);
  }
}
