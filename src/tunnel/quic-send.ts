// Write coalescing for QUIC streams (@chainsafe/libp2p-quic 2.1.1's QuicStream).
//
// QuicStream.sendData starts one native write per call and answers canSendMore: false every
// time, so a sender that honours backpressure (our splice, anything waiting on 'drain') hands
// the native stream one chunk (a socket read, 64 KiB at most) per round trip through the Rust
// runtime: one N-API call, promise, 'drain' event and socket pause/resume per chunk. Here, while
// one native write is in flight, what the stream is given is queued and joined into the next
// native write, and the caller may go on sending until QUIC_WRITE_HIGH_WATER bytes are queued;
// 'drain' comes when a write takes the queue. At most one native write per stream is in flight
// (the native write borrows the Rust stream mutably), as before.
// Measured (full quic no-PSK path, iperf3, shared 2-core box, A/B interleaved): sending agent
// 3.02-3.10 -> 2.98-3.00 CPU s/GiB, receiving 2.77-2.79 -> 2.58-2.70. Small, because about 3/4
// of each agent's CPU is quinn's own threads (per-thread /proc counts); the JS side's time in
// the native calls themselves is ~2-3% (timed around each call).
//
// close() waits for the queue: the base class calls sendCloseWrite once its own write buffer is
// empty, which with this queue no longer means written, so sendCloseWrite first waits for the
// last native write. sendReset drops the queue.
//
// Installed by installQuicReadBackpressure (quic-backpressure.ts), which knows each QuicStream's
// native stream (QUIC_NATIVE).

/** Queued bytes (beyond the write in flight) at which a stream asks its sender to wait. */
export const QUIC_WRITE_HIGH_WATER = 256 * 1024;

/** Set by quic-backpressure.ts on each QuicStream: its native stream. */
export const QUIC_NATIVE = Symbol("edgemesh.quicNative");
const WRITE_STATE = Symbol("edgemesh.quicWriteState");

interface NativeStream {
  write(data: Uint8Array): Promise<void>;
}

interface ChunkList {
  byteLength: number;
  subarray(): Uint8Array;
  [Symbol.iterator](): Iterator<Uint8Array>;
}

interface QuicStreamLike {
  [QUIC_NATIVE]?: NativeStream;
  [WRITE_STATE]?: WriteState;
  safeDispatchEvent(type: "drain"): void;
  abort(err: Error): void;
}

interface WriteState {
  readonly native: NativeStream;
  busy: boolean;
  pending: Uint8Array[];
  pendingBytes: number;
  /** The caller was told canSendMore: false and waits for 'drain'. */
  blocked: boolean;
  /** sendCloseWrite waiting for the last write. */
  flushed: (() => void) | undefined;
  readonly onWritten: () => void;
  readonly onFailed: (err: Error) => void;
}

type SendResult = { sentBytes: number; canSendMore: boolean };

export function installQuicWriteCoalescing(qs: Record<PropertyKey, unknown>): void {
  const sendData = qs.sendData as (this: QuicStreamLike, data: ChunkList) => SendResult;
  const sendCloseWrite = qs.sendCloseWrite as (this: QuicStreamLike, options?: unknown) => Promise<void>;
  const sendReset = qs.sendReset as (this: QuicStreamLike, err?: Error) => void;

  qs.sendData = function (this: QuicStreamLike, data: ChunkList): SendResult {
    const st = writeState(this);
    if (st === undefined) return sendData.call(this, data);
    if (!st.busy) {
      st.busy = true;
      st.native.write(data.subarray()).then(st.onWritten, st.onFailed);
    } else {
      for (const chunk of data) st.pending.push(chunk);
      st.pendingBytes += data.byteLength;
    }
    const canSendMore = st.pendingBytes < QUIC_WRITE_HIGH_WATER;
    if (!canSendMore) st.blocked = true;
    return { sentBytes: data.byteLength, canSendMore };
  };

  qs.sendCloseWrite = async function (this: QuicStreamLike, options?: unknown): Promise<void> {
    const st = this[WRITE_STATE];
    if (st !== undefined && st.busy) await new Promise<void>((resolve) => (st.flushed = resolve));
    return sendCloseWrite.call(this, options);
  };

  qs.sendReset = function (this: QuicStreamLike, err?: Error): void {
    const st = this[WRITE_STATE];
    if (st !== undefined) drop(st);
    sendReset.call(this, err);
  };
}

function writeState(stream: QuicStreamLike): WriteState | undefined {
  const existing = stream[WRITE_STATE];
  if (existing !== undefined) return existing;
  const native = stream[QUIC_NATIVE];
  if (native === undefined) return undefined;
  const st: WriteState = {
    native,
    busy: false,
    pending: [],
    pendingBytes: 0,
    blocked: false,
    flushed: undefined,
    onWritten: () => written(stream, st),
    onFailed: (err: Error) => {
      drop(st);
      stream.abort(err);
    },
  };
  stream[WRITE_STATE] = st;
  return st;
}

/** A native write finished: start the next with everything queued, or go idle. */
function written(stream: QuicStreamLike, st: WriteState): void {
  if (st.pendingBytes > 0) {
    const buf = st.pending.length === 1 ? st.pending[0]! : join(st.pending, st.pendingBytes);
    st.pending.length = 0;
    st.pendingBytes = 0;
    st.native.write(buf).then(st.onWritten, st.onFailed);
  } else {
    st.busy = false;
    settle(st);
  }
  if (st.blocked) {
    st.blocked = false;
    stream.safeDispatchEvent("drain");
  }
}

function drop(st: WriteState): void {
  st.pending.length = 0;
  st.pendingBytes = 0;
  st.busy = false;
  settle(st);
}

function settle(st: WriteState): void {
  const resolve = st.flushed;
  if (resolve === undefined) return;
  st.flushed = undefined;
  resolve();
}

/** One buffer for one native write (one allocation per batch, not per chunk). */
function join(chunks: Uint8Array[], total: number): Uint8Array {
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
