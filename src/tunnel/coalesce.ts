// Write coalescing between yamux and Noise: everything the muxer sends during one event-loop
// turn goes down as one batch, at setImmediate.
//
// yamux hands each frame (12-byte header + payload, or a bare window update) to the connection
// as its own send(); Noise then encrypts it as its own message (one AEAD call through FFI), the
// pnet layer XORs it into its own buffer, and the TCP socket gets one write per frame. With 64
// streams answering in the same turn that is 64 of each. Batched, Noise encrypts up to 64 KiB
// per message and the socket sees one write. Noise message boundaries carry no meaning for
// yamux, so the bytes on the wire are what go-libp2p's peers accept (EdgeMesh included).
// Cost: small frames wait for the end of the current turn (no timer, no added round trip).
// Once a batch reaches COALESCE_FLUSH_BYTES it goes down at once: bulk transfers gain nothing
// from waiting (their frames are already large) and measured slower when deferred.
import type { AbortOptions, MessageStream, StreamMessageEvent } from "@libp2p/interface";
import type { AbstractMessageStream } from "@libp2p/utils";
import { LayeredMessageStream } from "./layered-stream.ts";
import { Uint8ArrayList } from "uint8arraylist";
import { queueIsIdle, type QueueFields } from "./yamux-send.ts";

/** A batch this large is sent at once instead of at the end of the turn (one Noise message). */
export const COALESCE_FLUSH_BYTES = 64 * 1024;

/** The list type @libp2p/utils was built with (several uint8arraylist copies are installed). */
type ByteList = Parameters<AbstractMessageStream["sendData"]>[0];

export class CoalescingMessageStream extends LayeredMessageStream {
  readonly #pending = new Uint8ArrayList();
  #scheduled = false;
  readonly #flush = (): void => {
    this.#flushNow();
  };

  constructor(inner: MessageStream) {
    super(inner);
    inner.addEventListener("message", (evt: StreamMessageEvent) => this.onData(evt.data));
  }

  protected override onInnerClose(): void {
    this.#pending.consume(this.#pending.byteLength);
  }

  /**
   * The muxer's frames, straight into the batch when the stream's own queue is idle (see
   * yamux-send.ts: what processSendQueue would do, without its list copies and 'idle' event).
   */
  override send(data: Uint8Array | ByteList): boolean {
    if (!queueIsIdle(this as unknown as QueueFields, data.byteLength)) return super.send(data as Uint8Array);
    this.sendingData = true;
    try {
      const { canSendMore } = this.sendData(data as ByteList);
      if (!canSendMore) this.writableNeedsDrain = true;
      return canSendMore;
    } catch (err) {
      this.abort(err as Error);
      throw err;
    } finally {
      this.sendingData = false;
    }
  }

  sendData(data: ByteList) {
    const sentBytes = data.byteLength;
    this.#pending.append(data as unknown as Uint8ArrayList);
    if (this.#pending.byteLength >= COALESCE_FLUSH_BYTES) return { sentBytes, canSendMore: this.#flushNow() };
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
    // When the layer below is full, the muxer waits for its 'drain' (forwarded above).
    return { sentBytes, canSendMore: !this.inner.writableNeedsDrain };
  }

  /**
   * Hands the batch to the layer below (which keeps references to the same buffers); returns
   * false when that layer wants a 'drain' first.
   */
  #flushNow(): boolean {
    this.#scheduled = false;
    const n = this.#pending.byteLength;
    if (n === 0) return true;
    if ((this.inner as { writeStatus?: string }).writeStatus !== "writable") {
      this.#pending.consume(n); // the connection is closing or gone; nothing can carry it
      return false;
    }
    try {
      const ok = this.inner.send(this.#pending as unknown as Uint8Array);
      this.#pending.consume(n);
      return ok;
    } catch (err) {
      this.#pending.consume(this.#pending.byteLength);
      this.abort(err as Error); // never throw out of setImmediate
      return false;
    }
  }

  override sendReset(err: Error): void {
    this.#pending.consume(this.#pending.byteLength);
    super.sendReset(err);
  }
  override close(options?: AbortOptions): Promise<void> {
    // Anything the muxer queued here (waiting for drain) or batched goes down before the close.
    if (this.writeBuffer.byteLength > 0) {
      this.#pending.append(this.writeBuffer as unknown as Uint8ArrayList);
      this.writeBuffer.consume(this.writeBuffer.byteLength);
    }
    this.#flushNow();
    return super.close(options);
  }
}
