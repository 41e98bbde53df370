// A MessageStream layered over another (the connection below it): the PSK layer (pnet.ts) and
// the write batching under Noise (coalesce.ts). What every such layer does the same way lives
// here: it takes the inner stream's limits, turns the inner stream's close, drain and half-close
// into its own, and passes reset, pause, resume and close down. A layer adds how bytes go in
// and out (its 'message' listener and sendData).
import type { AbortOptions, MessageStream, StreamCloseEvent } from "@libp2p/interface";
import { AbstractMessageStream } from "@libp2p/utils";

export abstract class LayeredMessageStream extends AbstractMessageStream {
  protected readonly inner: MessageStream;

  constructor(inner: MessageStream) {
    super({ log: inner.log, inactivityTimeout: inner.inactivityTimeout, maxReadBufferLength: inner.maxReadBufferLength, direction: inner.direction });
    this.inner = inner;
    inner.addEventListener("close", (evt: StreamCloseEvent) => {
      this.onInnerClose();
      if (evt.error == null) this.onTransportClosed();
      else if (evt.local === true) this.abort(evt.error);
      else this.onRemoteReset();
    });
    inner.addEventListener("drain", () => this.safeDispatchEvent("drain"));
    inner.addEventListener("remoteCloseWrite", () => this.onRemoteCloseWrite());
  }

  /** The stream this layer wraps (for remoteAddrOf). */
  get below(): MessageStream {
    return this.inner;
  }

  /** The inner stream closed (before this one follows): drop whatever the layer still holds. */
  protected onInnerClose(): void {}

  sendReset(err: Error): void {
    this.inner.abort(err);
  }
  sendPause(): void {
    this.inner.pause();
  }
  sendResume(): void {
    this.inner.resume();
  }
  close(options?: AbortOptions): Promise<void> {
    return this.inner.close(options);
  }
}

/**
 * The remote address of the connection under a stack of layers, for logs: the PSK layer hands
 * Noise a stream of its own, which has no address; the multiaddr connection at the bottom does.
 */
export function remoteAddrOf(stream: unknown): string {
  let s: unknown = stream;
  for (let depth = 0; depth < 8 && s != null; depth++) {
    const addr = (s as { remoteAddr?: unknown }).remoteAddr;
    if (addr != null) return String(addr);
    s = s instanceof LayeredMessageStream ? s.below : undefined;
  }
  return "unknown";
}
