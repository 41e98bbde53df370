// One inbound CNI stream: frames from a peer's agent written into the TUN, one write per
// packet (or per offload superpacket) straight from the buffers libp2p hands us. Only a frame
// split across two chunks is copied, into this stream's reassembly buffer (allocated the first
// time that happens). A packet not addressed to this node's pods, or a malformed frame, is
// dropped and counted; a malformed frame also resets the stream (its framing is lost).
// The stream is read-only: nothing is ever written back (EdgeMesh's sender does not read).

import type { Stream, StreamMessageEvent } from "@libp2p/interface";
import { MAX_FRAME_BYTES, VNET_HDR_BYTES } from "./constants.ts";
import type { CniCounters, PeerCounters } from "./counters.ts";
import { frameLength, ipv4Destination } from "./frames.ts";
import type { CniDevice } from "./types.ts";

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
          this.#deliver(p, 0, this.#need);
          this.#have = 0;
          this.#need = 0;
        }
        continue;
      }
      const n = frameLength(buf, off, len - off, hdr);
      if (n < 0 || n > MAX_FRAME_BYTES) return this.#malformed();
      if (n === 0 || off + n > len) {
        // Split across chunks: keep what is here, the rest completes it.
        this.#partial ??= new Uint8Array(MAX_FRAME_BYTES);
        this.#partial.set(buf.subarray(off, len), 0);
        this.#have = len - off;
        this.#need = n;
        return;
      }
      this.#deliver(buf, off, n);
      off += n;
    }
  }

  #deliver(buf: Uint8Array, off: number, n: number): void {
    const ip = off + this.#hdr;
    const ctx = this.#ctx;
    if (n - this.#hdr < 20 || buf[ip]! >> 4 !== 4 || !ctx.isLocal(ipv4Destination(buf, ip))) {
      ctx.counters.drops.not_local.value++;
      this.#c.dropped.value++;
      return;
    }
    const dev = ctx.dev;
    const r = this.#hdr !== 0 || !dev.vnetHdr ? dev.write(buf, off, n) : dev.writeWithHead(ZERO_HDR, buf, off, n);
    if (r < 0) {
      ctx.counters.drops.write_error.value++;
      this.#c.dropped.value++;
      return;
    }
    this.#c.rxPackets.value++;
    this.#c.rxBytes.value += n - this.#hdr;
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
    this.#ctx.counters.release(this.#node);
  }
}
