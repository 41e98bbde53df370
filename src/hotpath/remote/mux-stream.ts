// One multiplexed UDP stream (FEATURE_UDP_MUX), the part both ends share: the stream's events
// feed the frame reader, datagrams go out as frames. Subclasses (the opener's and the far
// agent's) keep the flows and answer the frames.
//
// Sending a datagram allocates nothing here: the frame goes out as three buffers (the flow's
// 5-byte prefix, made once per flow; the shared 2-byte length; the datagram itself) through one
// Uint8ArrayList whose three slots are overwritten on every send (send() copies the references
// into the stream's queue, and the buffers are never changed afterwards). Receiving: the reader
// hands bodies on as (chunk, offset, length).

import type { Stream, StreamCloseEvent, StreamMessageEvent } from "@libp2p/interface";
import { Uint8ArrayList } from "uint8arraylist";
import type { ListFields } from "./datagrams.ts";
import { UDP_STREAM_QUEUE_MAX_BYTES } from "./datagrams.ts";
import { lengthBytes, MUX_HEADER_BYTES, MuxFrameReader, type MuxFrameHandler } from "./mux-frames.ts";

const MAX_DATAGRAM_BYTES = 65535;
const EMPTY = new Uint8Array(0);
/** The reset we cause when the stream is done or the peer broke the framing. */
export const MUX_STREAM_CLOSED = new Error("udp mux stream closed");

export abstract class MuxStream implements MuxFrameHandler {
  stream: Stream | null;
  readonly reader: MuxFrameReader;
  /** Datagrams not sent (queue over its bound, too large, stream gone). */
  dropped = 0;
  readonly #list = new Uint8ArrayList();
  readonly #out: ListFields;

  constructor(stream: Stream) {
    this.stream = stream;
    this.reader = new MuxFrameReader(this);
    this.#out = this.#list as unknown as ListFields;
    this.#out.bufs.push(EMPTY, EMPTY, EMPTY);
  }

  /** Start reading (bytes buffered in the stream come first, on a later tick). */
  attach(): void {
    const s = this.stream!;
    s.addEventListener("message", this);
    s.addEventListener("end", this);
    s.addEventListener("close", this);
    if (s.status !== "open" && s.status !== "closing") this.#gone(undefined);
  }

  handleEvent(evt: Event): void {
    if (evt.type === "message") {
      const data = (evt as StreamMessageEvent).data as unknown as Uint8Array | ListFields;
      if (data instanceof Uint8Array) {
        if (!this.reader.push(data)) this.protocolError();
        return;
      }
      const bufs = data.bufs;
      for (let i = 0; i < bufs.length && this.stream !== null; i++) {
        if (!this.reader.push(bufs[i]!)) return this.protocolError();
      }
    } else if (evt.type === "end") {
      // The peer closed its side: no more frames will come; the stream is done.
      if (this.stream?.remoteWriteStatus === "closed") this.reset();
    } else if (evt.type === "close") {
      this.#gone((evt as StreamCloseEvent).error);
    }
  }

  /** Frames and queues one datagram of the flow whose DATA prefix is `prefix`; false if dropped. */
  sendData(prefix: Uint8Array, d: Uint8Array): boolean {
    const s = this.stream;
    if (s === null || s.writeStatus !== "writable" || s.writeBufferLength > UDP_STREAM_QUEUE_MAX_BYTES || d.length > MAX_DATAGRAM_BYTES) {
      this.dropped++;
      return false;
    }
    const out = this.#out;
    out.bufs[0] = prefix;
    out.bufs[1] = lengthBytes(d.length);
    out.bufs[2] = d;
    out.length = MUX_HEADER_BYTES + d.length;
    try {
      s.send(this.#list as unknown as Uint8Array);
      return true;
    } catch {
      this.dropped++;
      return false;
    }
  }

  /** Queues an OPEN or CLOSE frame (past the datagram bound too: they free sockets). */
  sendControl(frame: Uint8Array): void {
    const s = this.stream;
    if (s === null || s.writeStatus !== "writable") return;
    try {
      s.send(frame);
    } catch {
      // the stream is going: its 'close' closes every flow
    }
  }

  /** Reset the stream; every flow on it is closed ('close' follows synchronously). */
  reset(): void {
    this.stream?.abort(MUX_STREAM_CLOSED);
  }

  protocolError(): void {
    this.onProtocolError(this.reader.error ?? "framing error");
    this.reset();
  }

  #gone(error: Error | undefined): void {
    if (this.stream === null) return;
    const s = this.stream;
    s.removeEventListener("message", this);
    s.removeEventListener("end", this);
    s.removeEventListener("close", this);
    this.stream = null;
    this.onGone(error === MUX_STREAM_CLOSED ? undefined : error);
  }

  abstract onData(flow: number, buf: Uint8Array, off: number, len: number): void;
  abstract onOpen(flow: number, ip: string, port: number): void;
  abstract onClose(flow: number, reason: number): void;
  /** The framing was broken (counted by the subclass); the stream is reset right after. */
  abstract onProtocolError(why: string): void;
  /** The stream is gone (reset, closed, connection lost): close every flow on it. */
  abstract onGone(error: Error | undefined): void;
}
