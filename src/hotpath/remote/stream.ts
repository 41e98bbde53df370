// A libp2p 3 stream (after the proxy header) as a ByteStream, and its events fed to a StreamSink,
// so the TCP splice drives a tunnel stream exactly like a Bun socket.
//
// Reading: the adapter is the stream's listener object (handleEvent), so no closure is made per
// stream or per chunk. libp2p hands each 'message' as a Uint8ArrayList whose `bufs` are views of
// the decrypted frames; we pass each view to the sink by index (no iterator, no copy). What libp2p
// itself allocates per chunk (the StreamMessageEvent, the sublist, yamux/noise frames and the
// AEAD output) is outside our reach and is the unavoidable cost per chunk.
// Writing: send() queues the chunk by reference (Uint8ArrayList.append; the encrypter copies when
// it seals a frame). send() returning false means "full, wait for 'drain'": the chunk is already
// queued, so we report it accepted and refuse the next write (0 bytes) until the 'drain' EVENT
// (onDrain() resolves only once in libp2p 3). At most one chunk beyond the window is queued.
// Closing: FIN is stream.close() (half-close); a reset is abort(). 'close' can arrive before the
// last bytes of a paused stream are read (both halves closed while unread data waits): then the
// sink hears close only after those bytes and the FIN, so nothing is lost.

import type { Stream, StreamCloseEvent, StreamMessageEvent } from "@libp2p/interface";
import type { ByteStream, StreamSink } from "../types.ts";
import type { ListFields } from "./datagrams.ts";

/** One error object for every reset we cause: terminate() is not a place to allocate. */
const TERMINATED = new Error("stream terminated by the proxy");
function ignore(): void {}

export class StreamAdapter implements ByteStream {
  stream: Stream | null;
  sink: StreamSink | null = null;
  /** Inbound stream whose CONNECT has not been answered: a reset now would hide the FAILED. */
  handshaking = false;
  /** The stream closed while unread bytes waited (paused): report close after them. */
  #closeDeferred = false;
  #closeError: Error | undefined = undefined;
  #inTerminate = false;
  #paused = false;

  constructor(stream: Stream, handshaking = false) {
    this.stream = stream;
    this.handshaking = handshaking;
  }

  /** Start delivering events to `sink` (bytes already buffered in the stream come first). */
  attach(sink: StreamSink): void {
    this.sink = sink;
    const s = this.stream!;
    s.addEventListener("message", this);
    s.addEventListener("drain", this);
    s.addEventListener("end", this);
    s.addEventListener("close", this);
    // Finished before we listened (the peer reset or closed during the handshake).
    if (s.status !== "open" && s.status !== "closing") this.#onClose(undefined);
    else if (s.readableEnded) queueMicrotask(() => this.#onEnd());
  }

  handleEvent(evt: Event): void {
    switch (evt.type) {
      case "message":
        return this.#onMessage((evt as StreamMessageEvent).data as unknown as Uint8Array | ListFields);
      case "drain":
        this.sink?.drain();
        return;
      case "end":
        return this.#onEnd();
      case "close":
        return this.#onClose((evt as StreamCloseEvent).error);
    }
  }

  #onMessage(data: Uint8Array | ListFields): void {
    if (data instanceof Uint8Array) {
      this.sink?.data(data);
      return;
    }
    const bufs = data.bufs;
    for (let i = 0; i < bufs.length; i++) {
      const sink = this.sink;
      if (sink === null) return;
      sink.data(bufs[i]!);
    }
  }

  #onEnd(): void {
    const s = this.stream;
    if (s === null || this.sink === null) return;
    // 'end' also fires on abort/reset and after our own closeRead(): only a peer's FIN counts.
    if (s.status === "aborted" || s.status === "reset" || s.remoteWriteStatus !== "closed") return;
    this.sink.end();
    if (this.#closeDeferred) this.#reportClose();
  }

  #onClose(error: Error | undefined): void {
    const s = this.stream;
    if (error === undefined && s !== null && s.readBufferLength > 0) {
      this.#closeDeferred = true; // unread bytes (paused): resume() delivers them, then 'end'
      return;
    }
    this.#closeError = error;
    if (this.#inTerminate) {
      // The splice is inside terminate(): tell it on the next turn, as a Bun socket would.
      queueMicrotask(() => this.#reportClose());
      return;
    }
    this.#reportClose();
  }

  #reportClose(): void {
    const sink = this.sink;
    this.sink = null;
    this.stream = null;
    this.#closeDeferred = false;
    if (sink !== null) sink.close(this.#closeError);
  }

  write(data: Uint8Array, offset = 0, length = data.length - offset): number {
    const s = this.stream;
    if (s === null || s.writeStatus !== "writable" || s.status !== "open") return -1;
    if (s.writableNeedsDrain) return 0; // 'drain' follows
    try {
      s.send(offset === 0 && length === data.length ? data : data.subarray(offset, offset + length));
    } catch {
      return -1;
    }
    return length;
  }

  shutdown(): void {
    const s = this.stream;
    if (s === null || s.writeStatus !== "writable") return;
    s.close().catch(ignore);
  }

  end(): void {
    const s = this.stream;
    if (s === null) return;
    if (this.handshaking) return this.#detach();
    if (s.writeStatus === "writable") s.close().catch(ignore);
    // We want nothing more from the peer: drop what it still sends.
    if (s.readStatus !== "closed" && s.readStatus !== "closing") s.closeRead().catch(ignore);
  }

  terminate(): void {
    const s = this.stream;
    if (s === null) return;
    // Not answered yet: the tunnel answers FAILED and closes the stream itself.
    if (this.handshaking) return this.#detach();
    this.#inTerminate = true;
    s.abort(TERMINATED);
    this.#inTerminate = false;
  }

  /** Hand the stream back to the tunnel (refused before SUCCESS); the sink still hears close. */
  #detach(): void {
    const s = this.stream!;
    s.removeEventListener("message", this);
    s.removeEventListener("drain", this);
    s.removeEventListener("end", this);
    s.removeEventListener("close", this);
    this.#closeError = TERMINATED;
    queueMicrotask(() => this.#reportClose());
  }

  pause(): void {
    const s = this.stream;
    if (s === null || this.#paused) return;
    this.#paused = true;
    if (s.readStatus === "readable") s.pause();
  }

  resume(): void {
    const s = this.stream;
    if (s === null || !this.#paused) return;
    this.#paused = false;
    if (s.readStatus === "paused") s.resume(); // dispatches what waited, then maybe 'end'
    if (this.#closeDeferred && this.stream !== null && s.readBufferLength === 0 && !s.readableEnded) this.#reportClose();
  }
}
