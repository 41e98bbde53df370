// Datagrams over a tunnel stream, both ends (a UDP flow to a remote endpoint, and a stream that
// arrived for a local UDP endpoint). Between our agents each datagram is framed as a 2-byte
// big-endian length + payload (negotiated in the proxy header: udpFramed); an EdgeMesh peer sends
// raw bytes, where each chunk read is taken as one datagram (what EdgeMesh itself does).
//
// Per datagram sent: the shared 2-byte header for that length (cached, immutable) and the
// payload go out as one Uint8ArrayList that is reused (send() copies the references into the
// stream's queue), so yamux makes one frame and we copy nothing. Per datagram received: a
// subarray view of the decrypted chunk when the frame lies inside it (a view object, no copy;
// Bun's UDP send() takes no offset), else the bytes are assembled in a per-channel buffer.

import type { Stream, StreamCloseEvent, StreamMessageEvent } from "@libp2p/interface";
import { Uint8ArrayList } from "uint8arraylist";
import type { DatagramChannel, DatagramSink } from "../types.ts";

/** Largest datagram a 2-byte length can frame (and more than any UDP payload over IPv4). */
export const MAX_FRAMED_DATAGRAM_BYTES = 65535;
/**
 * Bytes queued on a stream past which datagrams are dropped rather than queued: UDP may drop,
 * memory may not grow without bound behind a slow peer (and QUIC ignores pause()).
 */
export const UDP_STREAM_QUEUE_MAX_BYTES = 512 * 1024;
/** First size of a channel's reassembly buffer (grown to the frame length when needed). */
const ASSEMBLY_INITIAL_BYTES = 2048;

const HEADERS: (Uint8Array | undefined)[] = [];
function header(len: number): Uint8Array {
  let h = HEADERS[len];
  if (h === undefined) {
    h = new Uint8Array([len >>> 8, len & 0xff]);
    HEADERS[len] = h;
  }
  return h;
}

/** Uint8ArrayList's fields (public at run time, private in its types; several copies exist). */
export interface ListFields {
  bufs: Uint8Array[];
  length: number;
}

const CLOSED_BY_US = new Error("udp flow closed");

export class StreamDatagrams implements DatagramChannel {
  stream: Stream | null;
  readonly framed: boolean;
  sink: DatagramSink | null = null;
  /** Datagrams dropped on send (queue full, too large, stream gone). */
  dropped = 0;
  readonly #list = new Uint8ArrayList();
  readonly #out = this.#list as unknown as ListFields;
  // Reassembly of framed input: a pending length high byte, and a frame being collected.
  #hi = -1;
  #need = -1;
  #got = 0;
  #asm: Uint8Array | null = null;

  constructor(stream: Stream, framed: boolean) {
    this.stream = stream;
    this.framed = framed;
  }

  attach(sink: DatagramSink): void {
    this.sink = sink;
    const s = this.stream!;
    s.addEventListener("message", this);
    s.addEventListener("end", this);
    s.addEventListener("close", this);
    if (s.status !== "open" && s.status !== "closing") this.#closed(undefined);
  }

  handleEvent(evt: Event): void {
    if (evt.type === "message") {
      const data = (evt as StreamMessageEvent).data;
      if (data instanceof Uint8Array) return this.#chunk(data);
      const bufs = (data as unknown as ListFields).bufs;
      for (let i = 0; i < bufs.length && this.sink !== null; i++) this.#chunk(bufs[i]!);
    } else if (evt.type === "end") {
      // The peer closed its side: the flow is over (a UDP flow has no half-close).
      if (this.stream?.remoteWriteStatus === "closed") this.close();
    } else if (evt.type === "close") {
      this.#closed((evt as StreamCloseEvent).error);
    }
  }

  send(d: Uint8Array): boolean {
    const s = this.stream;
    if (s === null || s.writeStatus !== "writable" || s.writeBufferLength > UDP_STREAM_QUEUE_MAX_BYTES) {
      this.dropped++;
      return false;
    }
    try {
      if (!this.framed) {
        s.send(d);
        return true;
      }
      if (d.length > MAX_FRAMED_DATAGRAM_BYTES) {
        this.dropped++;
        return false;
      }
      const out = this.#out;
      out.bufs.push(header(d.length), d);
      out.length = 2 + d.length;
      s.send(this.#list as unknown as Uint8Array);
      out.bufs.length = 0;
      out.length = 0;
      return true;
    } catch {
      this.#out.bufs.length = 0;
      this.#out.length = 0;
      this.dropped++;
      return false;
    }
  }

  /** Reset the stream: both agents free it at once (no stream is left behind per flow). */
  close(): void {
    const s = this.stream;
    if (s === null) return;
    s.abort(CLOSED_BY_US); // 'close' follows synchronously and reaches the sink
  }

  #closed(error: Error | undefined): void {
    const sink = this.sink;
    this.sink = null;
    this.stream = null;
    this.#asm = null;
    if (sink !== null) sink.close(error === CLOSED_BY_US ? undefined : error);
  }

  #chunk(b: Uint8Array): void {
    const sink = this.sink;
    if (sink === null) return;
    if (!this.framed) return sink.datagram(b);
    const n = b.length;
    let off = 0;
    while (off < n && this.sink !== null) {
      if (this.#need >= 0) {
        // Collecting a frame that began in an earlier chunk.
        const take = Math.min(this.#need - this.#got, n - off);
        this.#asm!.set(take === n && off === 0 ? b : b.subarray(off, off + take), this.#got);
        this.#got += take;
        off += take;
        if (this.#got === this.#need) {
          this.#need = -1;
          sink.datagram(this.#asm!.subarray(0, this.#got));
        }
        continue;
      }
      let len: number;
      if (this.#hi >= 0) {
        len = (this.#hi << 8) | b[off++]!;
        this.#hi = -1;
      } else if (n - off >= 2) {
        len = (b[off]! << 8) | b[off + 1]!;
        off += 2;
      } else {
        this.#hi = b[off++]!;
        continue;
      }
      if (n - off >= len) {
        sink.datagram(b.subarray(off, off + len));
        off += len;
        continue;
      }
      if (this.#asm === null || this.#asm.length < len) this.#asm = new Uint8Array(Math.max(len, ASSEMBLY_INITIAL_BYTES));
      this.#need = len;
      this.#got = 0;
    }
  }
}
