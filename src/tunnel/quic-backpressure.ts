// Backpressure and read sizing for QUIC streams (@chainsafe/libp2p-quic 2.1.1's QuicStream).
//
// Backpressure: QuicStream reads its native stream in a loop regardless of pause() (sendPause
// is a no-op), so a slow reader (a splice whose socket is backed up) lets bytes pile up until
// libp2p's read-buffer limit resets the stream (iperf3 over QUIC: broken pipe). Here a paused
// stream stops reading the native stream, so QUIC flow control holds the sender back.
//
// Read size: QuicStream asks the native stream for 4 KiB per read (CHUNK_SIZE), and every read
// is one N-API call, one Rust Vec, one promise, one Uint8ArrayList and one 'message' event. At
// bulk rates that cost the receiver ~7.6 CPU s/GiB (raw tunnel bench, quic no-PSK; TCP: 1.1).
// The native read returns what quinn has ready, up to the size asked for, in a buffer of exactly
// that length, so asking for more costs nothing in memory held. It does cost the Rust side a
// zeroed Vec of the size asked per read, which hurt small request/response traffic at a fixed
// 64 KiB (13.4k -> 10.7k round trips/s), so the size adapts per stream: a read that came back
// full quadruples the next one (up to READ_MAX), one that came back under an eighth halves it
// (down to READ_MIN). The size a read returned is seen in onData, so no extra promise per read.
//
// The library has no option for either and keeps the native stream in a private field, so this
// is the one place that adjusts it:
// - QuicStream.prototype.readFromStream (called once, from the constructor) is wrapped to note
//   which QuicStream is starting; its first native read() runs synchronously inside it, which
//   ties the native stream to its QuicStream.
// - QuicStream.prototype.onData notes each read's length on the stream's read state.
// - the native Stream.prototype.read replaces the size asked for with the adaptive one and waits,
//   before each read, while that QuicStream is paused; sendResume and close wake it. A read
//   already in flight (at most READ_MAX) still completes.
// The package exports neither class, so both modules are loaded relative to its own entry
// point (the same module instances the package uses). test/unit/tunnel-quic-read.test.ts
// fails if the library changes shape. The same install adds write coalescing (quic-send.ts).

import { installQuicWriteCoalescing, QUIC_NATIVE } from "./quic-send.ts";

/** First and smallest read: the library's own 4 KiB. */
export const QUIC_READ_MIN = 4096;
/** Largest read: measured 64 KiB 1.64 Gbit/s, 256 KiB 1.80 (raw tunnel bench). */
export const QUIC_READ_MAX = 256 * 1024;

type ReadFn = (this: object, n: number) => Promise<Uint8Array | null>;

interface QuicStreamLike {
  readStatus: string;
  addEventListener(type: "close", fn: () => void, opts?: { once: boolean }): void;
  [READ_STATE]?: ReadState;
  [QUIC_NATIVE]?: unknown;
}

/** Per native stream: its QuicStream, the next read's size, the last read's length. */
interface ReadState {
  owner: QuicStreamLike | undefined;
  size: number;
  last: number;
}

const READ_STATE = Symbol("edgemesh.quicReadState");

const PATCHED = Symbol.for("edgemesh.quicReadBackpressure");
/** Native stream -> its read state. */
const readers = new WeakMap<object, ReadState>();
/** Paused QuicStream -> wakes its waiting read. */
const waiters = new WeakMap<QuicStreamLike, () => void>();
let starting: QuicStreamLike | undefined;

export async function installQuicReadBackpressure(): Promise<void> {
  const entry = import.meta.resolve("@chainsafe/libp2p-quic");
  const { QuicStream } = (await import(new URL("./stream.js", entry).href)) as { QuicStream?: { prototype: Record<PropertyKey, unknown> } };
  const { Stream } = (await import(new URL("./napi.js", entry).href)) as { Stream?: { prototype: Record<PropertyKey, unknown> } };
  const qs = QuicStream?.prototype;
  const native = Stream?.prototype;
  if (!qs || !native || typeof qs.readFromStream !== "function" || typeof qs.sendResume !== "function" || typeof qs.onData !== "function" || typeof qs.sendData !== "function" || typeof qs.sendCloseWrite !== "function" || typeof qs.sendReset !== "function" || typeof native.read !== "function") {
    throw new Error("@chainsafe/libp2p-quic changed (QuicStream / Stream.read): review src/tunnel/quic-backpressure.ts and quic-send.ts");
  }
  if (qs[PATCHED] === true) return;

  const readFromStream = qs.readFromStream as (this: QuicStreamLike) => Promise<void>;
  qs.readFromStream = function (this: QuicStreamLike) {
    starting = this;
    try {
      return readFromStream.call(this);
    } finally {
      starting = undefined;
    }
  };

  const sendResume = qs.sendResume as (this: QuicStreamLike) => void;
  qs.sendResume = function (this: QuicStreamLike) {
    sendResume.call(this);
    wake(this);
  };

  const onData = qs.onData as (this: QuicStreamLike, data: { byteLength: number }) => void;
  qs.onData = function (this: QuicStreamLike, data: { byteLength: number }) {
    const state = this[READ_STATE];
    if (state !== undefined) state.last = data.byteLength;
    onData.call(this, data);
  };

  const read = native.read as ReadFn;
  native.read = function (this: object, _n: number) {
    let state = readers.get(this);
    if (state === undefined) {
      state = { owner: starting, size: QUIC_READ_MIN, last: 0 };
      readers.set(this, state);
      const owner = starting;
      starting = undefined;
      if (owner !== undefined) {
        owner[READ_STATE] = state;
        owner[QUIC_NATIVE] = this as never;
        owner.addEventListener("close", () => wake(owner), { once: true });
      }
    } else {
      state.size = nextReadSize(state.size, state.last);
    }
    const owner = state.owner;
    if (owner === undefined || owner.readStatus !== "paused") return read.call(this, state.size);
    const size = state.size;
    return new Promise<void>((resolve) => waiters.set(owner, resolve)).then(() => read.call(this, size));
  };
  installQuicWriteCoalescing(qs); // one native write in flight, the rest joined (quic-send.ts)
  qs[PATCHED] = true;
}

/** The next read's size after a read of `size` returned `last` bytes. */
export function nextReadSize(size: number, last: number): number {
  if (last >= size) return Math.min(size * 4, QUIC_READ_MAX);
  if (last < size >> 3) return Math.max(size >> 1, QUIC_READ_MIN);
  return size;
}

function wake(stream: QuicStreamLike): void {
  const resolve = waiters.get(stream);
  if (resolve === undefined) return;
  waiters.delete(stream);
  resolve();
}
