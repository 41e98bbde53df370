// Where sealed Noise messages are written. Noise's own encrypt allocates one buffer per message
// and sends it behind a separate 2-byte length; ours (noise-frames.ts) lays a whole batch out in
// one buffer, prefix and ciphertext of each message back to back, so the batch costs one
// allocation and one socket write, and the pnet layer may XOR it in place. The seal functions
// (openssl.ts, noise.ts) do not see the batch: the framing code points the next seal at its slot
// with sealNextInto(); without that a seal gets a buffer of its own, with the same headroom.
//
// Batch buffers are reused (SealPool) once the layers below have let go of them, and plaintext
// buffers whose owner asks (SEAL_WATCH: the Edge CNI's slabs) are told when Noise has sealed
// their bytes, the point after which nothing reads them again.
//
// When is a buffer handed to the TCP socket done? Bun's node:net Socket (1.4.x, _write in
// src/js/node/net.ts, writeOrEndBuffered in src/bun.js/api/bun/socket.zig) passes the chunk to
// the native socket, which sends what the kernel takes and COPIES the rest into its own buffer
// (buffered_data_for_node_net); the write callback waits for 'drain'. A chunk written while an
// earlier one still waits for its callback stays in the Writable's queue BY REFERENCE (and is
// later joined by _writev's Buffer.concat). Both stay counted in socket.writableLength until
// their callback runs (tunnel-seal-pool.test.ts checks both facts against the running Bun). Above
// the socket, libp2p's stream layers (the TCP connection, the pnet layer) queue buffers by
// reference in their writeBuffer. So of the bytes Noise has handed down, all but
// (sum of writeBufferLength below Noise + socket.writableLength) have left JavaScript for good:
// that count is the pool's "done" line. Bytes others write into the same layers only raise the
// sum, which makes the line later, never earlier.

import type { Uint8ArrayList } from "uint8arraylist";
import { AEAD_TAG_BYTES } from "./aead-constants.ts";

/** Room in front of every sealed message for Noise's 2-byte big-endian length. */
export const SEAL_HEADROOM_BYTES = 2;

/**
 * ArrayBuffers holding sealed messages that only the layers below Noise will touch: the pnet layer
 * XORs them in place (once: it deletes the entry) instead of into a copy (pnet.ts).
 */
export const SEALED_BUFFERS = new WeakSet<ArrayBufferLike>();

let target: Uint8Array | null = null;
let targetAt = 0;

/** An unpooled, registered buffer of `bytes` bytes (its own ArrayBuffer). */
export function allocSealed(bytes: number): Buffer {
  const buf = Buffer.allocUnsafeSlow(bytes);
  SEALED_BUFFERS.add(buf.buffer);
  return buf;
}

/** The next seal writes its headroom, ciphertext and tag at `buf[at..]` (one seal only). */
export function sealNextInto(buf: Uint8Array, at: number): void {
  target = buf;
  targetAt = at;
}

/** Drops a target no seal took (the seal threw before it got there). */
export function clearSealTarget(): void {
  target = null;
}

/**
 * The region a seal of `n` plaintext bytes writes: headroom, ciphertext, tag. A plain Uint8Array
 * (Buffer's slice() would share memory where callers expect a copy).
 */
export function sealRegion(n: number): Uint8Array {
  const size = SEAL_HEADROOM_BYTES + n + AEAD_TAG_BYTES;
  const t = target;
  if (t !== null) {
    target = null;
    if (targetAt + size <= t.length) return new Uint8Array(t.buffer, t.byteOffset + targetAt, size);
  }
  return new Uint8Array(allocSealed(size).buffer, 0, size);
}

// ---- "sealed" signal for plaintext buffers ----

/**
 * Counts the bytes of one plaintext buffer that Noise has sealed. Its owner adds what it hands to
 * a stream to `sent`; once `sealed` reaches it, every byte it sent has been encrypted into a batch
 * and nothing reads the buffer any more (the library keeps no reference to plaintext it sealed).
 * Bytes that never reach a native-AEAD Noise (QUIC, a reset stream, the wasm/js AEADs) are never
 * counted: such a buffer simply never looks done, and its owner allocates a new one.
 */
export interface SealWatch {
  sent: number;
  sealed: number;
}

const WATCHED = new WeakMap<ArrayBufferLike, SealWatch>();
let watchedCount = 0;

/** Starts counting sealed bytes of views of `buf` (one watch per ArrayBuffer, for its lifetime). */
export function watchSealed(buf: ArrayBufferLike): SealWatch {
  let w = WATCHED.get(buf);
  if (w === undefined) {
    w = { sent: 0, sealed: 0 };
    WATCHED.set(buf, w);
    watchedCount++; // never decremented: only gates the per-batch lookups below
  }
  return w;
}

/** Called by the batch encrypt after it sealed `chunk`: counts the bytes of watched buffers. */
export function noteSealed(chunk: Uint8Array | Uint8ArrayList): void {
  if (watchedCount === 0) return; // no watcher in this process (no Edge CNI): no lookups
  if (chunk instanceof Uint8Array) {
    const w = WATCHED.get(chunk.buffer);
    if (w !== undefined) w.sealed += chunk.byteLength;
    return;
  }
  const bufs = (chunk as unknown as { bufs: Uint8Array[] }).bufs;
  for (let i = 0; i < bufs.length; i++) {
    const b = bufs[i]!;
    const w = WATCHED.get(b.buffer);
    if (w !== undefined) w.sealed += b.byteLength;
  }
}

// ---- pool of batch buffers ----

/** Smallest pooled buffer; batches are rounded up to a power of two from here. */
export const SEAL_POOL_MIN_BYTES = 2 * 1024;
/**
 * Batches above this get a buffer of their own (not pooled). noise-frames.ts seals at most 4
 * messages per batch (262,148 bytes): those land in the 512 KiB class, whose upper half is never
 * written, so its pages cost no memory.
 */
export const SEAL_POOL_MAX_BYTES = 512 * 1024;
/**
 * Free buffers a pool keeps, counted in bytes written into them (pages never written cost no
 * memory); beyond it a returned buffer is left to the GC. A bulk flow over a backed-up socket has
 * a few MB in flight, which come back in bursts when the socket drains.
 */
export const SEAL_POOL_FREE_BYTES = 4 * 1024 * 1024;
/**
 * Free buffers of a size that served no batch for this long go back (after a bulk transfer, or on
 * an idle connection): checked every SEAL_POOL_IDLE_MS, so they go 1-2 of them later.
 */
export const SEAL_POOL_IDLE_MS = 1000;
/** Batches a pool tracks in flight; past it new batches are not pooled (still counted). */
const SEAL_POOL_TRACK_MAX = 1024;
const CLASSES = Math.log2(SEAL_POOL_MAX_BYTES / SEAL_POOL_MIN_BYTES) + 1;

/** Totals over every pool of this process (metrics, tests, the bench's profile). */
export const SEAL_POOL_STATS = {
  /** Batches written into a reused buffer. */
  reused: 0,
  /** Batches that got a new buffer (the pool had none free, or the batch was too large). */
  allocated: 0,
  /** The most bytes seen held below Noise when a pool looked for done buffers. */
  maxPendingSeen: 0,
};

/** Bytes still held (by reference) below Noise: the layers' write buffers and the socket's queue. */
export type PendingBelow = () => number;

/**
 * Batch buffers of one secured connection, reused once the layers below are done with them (see
 * the top of this file for when that is). One per connection: the count is the connection's.
 */
export class SealPool {
  readonly #pending: PendingBelow;
  /** Bytes of batches handed down since the pool began. */
  #handed = 0;
  /** In-flight pooled batches, oldest first (a ring): buffer and the #handed value at its end. */
  #bufs: (Buffer | null)[] = new Array(16).fill(null);
  #ends: number[] = new Array(16).fill(0);
  #used: number[] = new Array(16).fill(0);
  #head = 0;
  #count = 0;
  readonly #free: Buffer[][] = Array.from({ length: CLASSES }, () => []);
  /** Bytes written into the free buffers (what they cost in memory). */
  #freeBytes = 0;
  /** take() calls per size class since the last idle check. */
  readonly #takes = new Uint32Array(CLASSES);

  constructor(pending: PendingBelow) {
    this.#pending = pending;
    watchIdle(this);
  }

  /** A registered (SEALED_BUFFERS) buffer of at least `bytes` bytes for the next batch. */
  take(bytes: number): Buffer {
    if (bytes > SEAL_POOL_MAX_BYTES) {
      SEAL_POOL_STATS.allocated++;
      return allocSealed(bytes);
    }
    const c = bytes <= SEAL_POOL_MIN_BYTES ? 0 : Math.ceil(Math.log2(bytes / SEAL_POOL_MIN_BYTES));
    this.#takes[c]!++;
    if (this.#free[c]!.length === 0 && this.#count > 0) this.#reclaim();
    const buf = this.#free[c]!.pop();
    if (buf !== undefined) {
      this.#freeBytes -= Math.min(buf.length, this.#freeUsed.get(buf) ?? buf.length);
      SEALED_BUFFERS.add(buf.buffer); // the pnet layer removed it when it XORed the last batch
      SEAL_POOL_STATS.reused++;
      return buf;
    }
    SEAL_POOL_STATS.allocated++;
    return allocSealed(SEAL_POOL_MIN_BYTES << c);
  }

  /**
   * `bytes` bytes of `buf` (from take()) go down now, synchronously, in order after everything
   * handed before. Buffers of other sizes are counted but not kept.
   */
  handed(buf: Buffer, bytes: number): void {
    this.#handed += bytes;
    if (buf.length > SEAL_POOL_MAX_BYTES || buf.length < SEAL_POOL_MIN_BYTES) return;
    if (this.#count === this.#bufs.length) {
      if (this.#count >= SEAL_POOL_TRACK_MAX) return;
      this.#grow();
    }
    const i = (this.#head + this.#count) % this.#bufs.length;
    this.#bufs[i] = buf;
    this.#ends[i] = this.#handed;
    this.#used[i] = bytes;
    this.#count++;
  }

  /** Moves batches the layers below no longer hold to the free lists. */
  #reclaim(): void {
    const pending = this.#pending();
    if (pending > SEAL_POOL_STATS.maxPendingSeen) SEAL_POOL_STATS.maxPendingSeen = pending;
    const done = this.#handed - pending;
    const cap = this.#bufs.length;
    while (this.#count > 0 && this.#ends[this.#head]! <= done) {
      const buf = this.#bufs[this.#head]!;
      const used = Math.max(this.#used[this.#head]!, this.#freeUsed.get(buf) ?? 0);
      this.#bufs[this.#head] = null;
      this.#head = (this.#head + 1) % cap;
      this.#count--;
      if (this.#freeBytes + used > SEAL_POOL_FREE_BYTES) continue;
      const c = Math.log2(buf.length / SEAL_POOL_MIN_BYTES);
      this.#free[c]!.push(buf);
      this.#freeUsed.set(buf, used);
      this.#freeBytes += used;
    }
  }

  /** The most bytes ever written into each pooled buffer (its pages in memory). */
  readonly #freeUsed = new WeakMap<Buffer, number>();

  /** Called every SEAL_POOL_IDLE_MS: free buffers of a size not asked for since then go back. */
  trimIfIdle(): void {
    if (this.#freeBytes === 0) {
      this.#takes.fill(0);
      return;
    }
    for (let c = 0; c < CLASSES; c++) {
      const list = this.#free[c]!;
      if (this.#takes[c] === 0) {
        for (const buf of list) this.#freeBytes -= Math.min(buf.length, this.#freeUsed.get(buf) ?? buf.length);
        list.length = 0;
      }
      this.#takes[c] = 0;
    }
  }

  #grow(): void {
    const n = this.#bufs.length;
    const bufs: (Buffer | null)[] = new Array(n * 2).fill(null);
    const ends: number[] = new Array(n * 2).fill(0);
    const used: number[] = new Array(n * 2).fill(0);
    for (let k = 0; k < this.#count; k++) {
      bufs[k] = this.#bufs[(this.#head + k) % n]!;
      ends[k] = this.#ends[(this.#head + k) % n]!;
      used[k] = this.#used[(this.#head + k) % n]!;
    }
    this.#bufs = bufs;
    this.#ends = ends;
    this.#used = used;
    this.#head = 0;
  }
}

// One timer for all pools (unref'd: it keeps no process alive), over weak references.
const idlePools = new Set<WeakRef<SealPool>>();
let idleTimer: ReturnType<typeof setInterval> | undefined;

function watchIdle(pool: SealPool): void {
  idlePools.add(new WeakRef(pool));
  if (idleTimer !== undefined) return;
  idleTimer = setInterval(() => {
    for (const ref of idlePools) {
      const p = ref.deref();
      if (p === undefined) idlePools.delete(ref);
      else p.trimIfIdle();
    }
    if (idlePools.size === 0) {
      clearInterval(idleTimer);
      idleTimer = undefined;
    }
  }, SEAL_POOL_IDLE_MS);
  (idleTimer as { unref?: () => void }).unref?.();
}

/** What the pool needs to see of a libp2p stream layer. */
interface Layer {
  writeBufferLength?: unknown;
  below?: unknown;
  socket?: { writableLength?: unknown; write?: unknown };
}

/**
 * The pending-bytes probe for the stack under Noise, when it ends in a node:net socket (libp2p's
 * TCP connection, possibly under our pnet layer); undefined otherwise (a relayed connection runs
 * over a yamux stream that hands buffers on by reference: no pool there).
 * `isLayer(s)` tells whether `s` is one of our LayeredMessageStreams (its `below` is the next).
 */
export function pendingBelow(stream: unknown, isLayer: (s: unknown) => boolean): PendingBelow | undefined {
  const layers: Layer[] = [];
  let s = stream as Layer | undefined;
  for (let depth = 0; depth < 8 && s != null; depth++) {
    if (typeof s.writeBufferLength !== "number") return undefined;
    layers.push(s);
    if (isLayer(s)) {
      s = s.below as Layer | undefined;
      continue;
    }
    const sock = s.socket;
    if (sock == null || typeof sock.writableLength !== "number" || typeof sock.write !== "function") return undefined;
    const [l0, l1, l2] = [layers[0]!, layers[1], layers[2]];
    if (layers.length === 1) return () => (l0.writeBufferLength as number) + (sock.writableLength as number);
    if (layers.length === 2) return () => (l0.writeBufferLength as number) + (l1!.writeBufferLength as number) + (sock.writableLength as number);
    if (layers.length === 3) return () => (l0.writeBufferLength as number) + (l1!.writeBufferLength as number) + (l2!.writeBufferLength as number) + (sock.writableLength as number);
    return () => {
      let n = sock.writableLength as number;
      for (const l of layers) n += l.writeBufferLength as number;
      return n;
    };
  }
  return undefined;
}
