// Backpressure for QUIC streams: stop reading from the native stream while the libp2p stream
// is paused, so QUIC flow control (not our read buffer) holds the sender back.
//
// @chainsafe/libp2p-quic 2's QuicStream reads its native stream in a loop regardless of
// pause() (sendPause is a no-op), so a slow reader (a splice whose socket is backed up) lets
// bytes pile up until libp2p's read-buffer limit resets the stream (iperf3 over QUIC: broken
// pipe). The library has no option for it and keeps the native stream in a private field,
// so this is the one place that adjusts it:
// - QuicStream.prototype.readFromStream (called once, from the constructor) is wrapped to note
//   which QuicStream is starting; its first native read() runs synchronously inside it, which
//   ties the native stream to its QuicStream.
// - the native Stream.prototype.read waits, before each read, while that QuicStream is paused;
//   sendResume and close wake it. A read already in flight (4 KiB) still completes.
// The package exports neither class, so both modules are loaded relative to its own entry
// point (the same module instances the package uses). tunnel-quic-backpressure.test.ts
// fails if the library changes shape.

type ReadFn = (this: object, n: number) => Promise<Uint8Array | null>;

interface QuicStreamLike {
  readStatus: string;
  addEventListener(type: "close", fn: () => void, opts?: { once: boolean }): void;
}

const PATCHED = Symbol.for("edgemesh.quicReadBackpressure");
/** Native stream -> the QuicStream reading it. */
const readers = new WeakMap<object, QuicStreamLike>();
/** Paused QuicStream -> wakes its waiting read. */
const waiters = new WeakMap<QuicStreamLike, () => void>();
let starting: QuicStreamLike | undefined;

export async function installQuicReadBackpressure(): Promise<void> {
  const entry = import.meta.resolve("@chainsafe/libp2p-quic");
  const { QuicStream } = (await import(new URL("./stream.js", entry).href)) as { QuicStream?: { prototype: Record<PropertyKey, unknown> } };
  const { Stream } = (await import(new URL("./napi.js", entry).href)) as { Stream?: { prototype: Record<PropertyKey, unknown> } };
  const qs = QuicStream?.prototype;
  const native = Stream?.prototype;
  if (!qs || !native || typeof qs.readFromStream !== "function" || typeof qs.sendResume !== "function" || typeof native.read !== "function") {
    throw new Error("@chainsafe/libp2p-quic changed (QuicStream.readFromStream / Stream.read): review src/tunnel/quic-backpressure.ts");
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

  const read = native.read as ReadFn;
  native.read = function (this: object, n: number) {
    let owner = readers.get(this);
    if (owner === undefined && starting !== undefined) {
      owner = starting;
      starting = undefined;
      readers.set(this, owner);
      owner.addEventListener("close", () => wake(owner!), { once: true });
    }
    if (owner === undefined || owner.readStatus !== "paused") return read.call(this, n);
    const paused = owner;
    return new Promise<void>((resolve) => waiters.set(paused, resolve)).then(() => read.call(this, n));
  };
  qs[PATCHED] = true;
}

function wake(stream: QuicStreamLike): void {
  const resolve = waiters.get(stream);
  if (resolve === undefined) return;
  waiters.delete(stream);
  resolve();
}
