// A direct send for yamux streams, and direct delivery of their frames to a single listener.
//
// Every send() on a libp2p 3 stream goes through AbstractMessageStream's queue: append to the
// write buffer, processSendQueue takes a sublist and a defensive copy of it (two Uint8ArrayLists),
// consumes the buffer, calls sendData (which takes another sublist per frame), then dispatches
// 'idle' (a CustomEvent through the native EventTarget, listened to or not). For a proxied
// 1 KiB request that is the same work again in the muxer's own send to the connection below,
// each request and each answer, in both agents: measured ~0.26 us per event object alone.
// When nothing is queued, no drain is pending and the chunk fits the send window and the
// message size, the queue would send it at once as one frame: yamuxFastSend does exactly that
// (the library's getSendFlags and sendFrame, same header, same payload bytes), and leaves every
// other case (queued bytes, a full window, drain, closing, an 'idle' listener waiting for the
// queue to empty) to the library's code. (A global "no event without a listener" patch of
// safeDispatchEvent was tried and dropped: it broke relay reservations, test/e2e/relay-liveness.)
// Receiving, a data frame for a stream with one plain 'message' listener (the splice's adapter)
// goes to that listener at once when nothing waits in the read buffer and the stream is
// readable: what onData -> dispatchReadBuffer would deliver, without the read-buffer round trip
// (append, sublist, consume) and the Event object through the native EventTarget; the listener
// gets { type: "message", data } with the frame's own list. Any other case (paused, closing,
// buffered bytes, several listeners, a listener added with options) takes the library's path.
// A listener that throws is reported (reportError) as EventTarget does, never into the muxer.
// The library has no option for any of these, so this is the one place that adjusts them; like
// yamux-window.ts it patches prototypes once per process and fails loudly if they changed.
// tunnel-yamux-send.test.ts checks the frames on the wire against the library's own send.
import { YamuxStream } from "@chainsafe/libp2p-yamux/stream";

/** yamux's data frame type (frame.ts FrameType.Data); its 12-byte header is the library's. */
const FRAME_DATA = 0;

/** The stream fields the direct send reads and writes (public in the classes, typed loosely). */
interface SendFields extends QueueFields {
  sendWindowCapacity: number;
  streamId: number;
  getSendFlags(): number;
  sendFrame(header: { type: number; flag: number; streamID: number; length: number }, data?: unknown): boolean;
  abort(err: Error): void;
}

const PATCHED = Symbol.for("edgemesh.yamuxFastSend");
/** The library's own send, kept under this symbol (tests compare with it). */
export const YAMUX_ORIGINAL_SEND = Symbol.for("edgemesh.yamuxOriginalSend");

/** The queue fields of any libp2p 3 message stream (AbstractMessageStream). */
export interface QueueFields {
  writeStatus: string;
  writableNeedsDrain: boolean;
  sendingData: boolean;
  writeBuffer: { byteLength: number };
  maxMessageSize?: number;
  listenerCount(type: string): number;
}

/**
 * True when AbstractMessageStream.send of `n` bytes on `s` would hand them to sendData at once,
 * in one call: nothing queued or being sent, no drain pending, writable, `n` within the message
 * size; and nobody waits for the 'idle' that would follow.
 */
export function queueIsIdle(s: QueueFields, n: number): boolean {
  return (
    n > 0 &&
    s.writeStatus === "writable" &&
    !s.writableNeedsDrain &&
    !s.sendingData &&
    s.writeBuffer.byteLength === 0 &&
    (s.maxMessageSize == null || n <= s.maxMessageSize) &&
    s.listenerCount("idle") === 0
  );
}

/** The one 'message' listener added without options, when it is the only one (else undefined). */
const DIRECT_LISTENER = Symbol("edgemesh.directMessageListener");
type MessageListener = ((evt: unknown) => void) | { handleEvent(evt: unknown): void };

/** The stream fields the direct delivery reads and writes. */
interface ReadFields {
  [DIRECT_LISTENER]?: MessageListener;
  readStatus: string;
  remoteWriteStatus: string;
  readBuffer: { byteLength: number };
  listenerCount(type: string): number;
  maybeDispatchEnd(): void;
  checkReadBufferLength(): void;
}

/** Installs them once per process (idempotent); returns true if active. */
export function installYamuxFastSend(): boolean {
  const proto = YamuxStream.prototype as unknown as Record<PropertyKey, unknown> & { send: (data: Uint8Array) => boolean; sendData: unknown; getSendFlags: unknown };
  if (proto[PATCHED] === true) return true;
  const original = proto.send;
  if (typeof original !== "function" || typeof proto.sendData !== "function" || typeof proto.getSendFlags !== "function") {
    throw new Error("@chainsafe/libp2p-yamux changed (no YamuxStream.send/sendData/getSendFlags): review src/tunnel/yamux-send.ts");
  }
  proto.send = function send(this: SendFields, data: Uint8Array) {
    const n = data.byteLength;
    if (n > this.sendWindowCapacity || !queueIsIdle(this, n)) return original.call(this, data);
    this.sendingData = true;
    try {
      const more = this.sendFrame({ type: FRAME_DATA, flag: this.getSendFlags(), streamID: this.streamId, length: n }, data);
      this.sendWindowCapacity -= n;
      if (!more) this.writableNeedsDrain = true; // as processSendQueue: wait for the muxer's drain
      return more;
    } catch (err) {
      this.abort(err as Error);
      throw err;
    } finally {
      this.sendingData = false;
    }
  };

  type Listen = (this: ReadFields, type: string, listener: MessageListener | null, opts?: unknown) => void;
  const rec = proto as unknown as { addEventListener: Listen; removeEventListener: Listen; onData: (this: ReadFields, data: { byteLength: number }) => void };
  const add = rec.addEventListener;
  const remove = rec.removeEventListener;
  const onData = rec.onData;
  if (typeof add !== "function" || typeof remove !== "function" || typeof onData !== "function" || typeof (proto as Record<string, unknown>).maybeDispatchEnd !== "function" || typeof (proto as Record<string, unknown>).checkReadBufferLength !== "function") {
    throw new Error("@libp2p/utils changed (no AbstractMessageStream.onData/maybeDispatchEnd/checkReadBufferLength): review src/tunnel/yamux-send.ts");
  }
  rec.addEventListener = function addEventListener(type, listener, opts) {
    add.call(this, type, listener, opts);
    if (type === "message") this[DIRECT_LISTENER] = opts === undefined && listener != null && this.listenerCount("message") === 1 ? listener : undefined;
  };
  rec.removeEventListener = function removeEventListener(type, listener, opts) {
    remove.call(this, type, listener, opts);
    if (type === "message") this[DIRECT_LISTENER] = undefined; // the library's dispatch from now on
  };
  rec.onData = function onDataDirect(data) {
    const l = this[DIRECT_LISTENER];
    if (l === undefined || data.byteLength === 0 || this.readStatus !== "readable" || this.readBuffer.byteLength !== 0) return onData.call(this, data);
    const evt = { type: "message", data };
    try {
      if (typeof l === "function") l(evt);
      else l.handleEvent(evt);
    } catch (err) {
      reportError(err);
    }
    // What dispatchReadBuffer does after dispatching.
    if (this.readBuffer.byteLength === 0 && this.remoteWriteStatus === "closed") {
      this.readStatus = "closed";
      this.maybeDispatchEnd();
    }
    this.checkReadBufferLength();
  };
  proto[YAMUX_ORIGINAL_SEND] = original;
  proto[PATCHED] = true;
  return true;
}
