// Outbound slabs, reused once Noise has sealed every byte that was sent from them.
//
// A batch leaves as a view of its slab: yamux, the write coalescer and Noise's own write queue
// hold that view (by reference) until Noise encrypts it, which can be well after send() returned
// when the connection is backed up. Rewriting a slab before then would change packets already
// "sent": the receiver's kernel computes the checksum of an offload packet (NEEDS_CSUM) over
// whatever bytes arrive, so the corruption would be silent. So a slab is reused only when the
// tunnel says its bytes are sealed: each slab carries a SealWatch (src/tunnel/seal-buffers.ts);
// the sender adds what it hands to the stream, Noise's batch encrypt adds what it sealed. Bytes
// that never reach that encrypt (a QUIC connection, a stream reset with data queued, a peer
// without virtio headers whose batches are copied: those count nothing) keep a slab from ever
// looking done: it is left to the GC and a new one allocated, as before.
// A reused slab's pages are already in memory: no page faults for the TUN reads that fill it.

import { watchSealed, type SealWatch } from "../../tunnel/seal-buffers.ts";

/** A slab and its count of bytes sent / sealed. */
export interface Slab {
  readonly buf: Uint8Array;
  readonly watch: SealWatch;
}

/**
 * Slabs replaced while their bytes may still be in flight, kept for reuse (per pump). A bulk flow
 * has up to PEER_QUEUE_BYTES (2 MiB) queued per peer: 2-3 slabs in flight, one or two coming back.
 */
export const SLABS_RETIRED_MAX = 4;
/** Retired slabs go back to the GC when no slab was taken for this long (the flow stopped). */
export const SLABS_IDLE_MS = 2000;

export class SlabPool {
  readonly #bytes: number;
  /** Oldest first. */
  readonly #retired: Slab[] = [];
  /** Slabs handed out again / newly allocated. */
  reused = 0;
  allocated = 0;

  #takes = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(bytes: number) {
    this.#bytes = bytes;
  }

  /** A slab whose every sent byte is sealed, or a new one. */
  take(): Slab {
    this.#takes++;
    const r = this.#retired;
    for (let i = 0; i < r.length; i++) {
      const s = r[i]!;
      if (s.watch.sealed >= s.watch.sent) {
        r.splice(i, 1);
        s.watch.sent = 0;
        s.watch.sealed = 0;
        this.reused++;
        return s;
      }
    }
    this.allocated++;
    // Not zero-filled (no memset; pages are touched only when a read fills them).
    const buf = Buffer.allocUnsafeSlow(this.#bytes);
    return { buf, watch: watchSealed(buf.buffer) };
  }

  /** `s` is no longer written to; it may come back from take() once its bytes are sealed. */
  retire(s: Slab): void {
    if (s.buf.length !== this.#bytes) return;
    if (this.#retired.length >= SLABS_RETIRED_MAX) this.#retired.shift(); // the oldest is left to the GC
    this.#retired.push(s);
    if (this.#timer === undefined) {
      // While slabs wait here: drop them once the flow has stopped (an unref'd timer, per pump).
      let seen = this.#takes;
      this.#timer = setInterval(() => {
        if (this.#takes !== seen) {
          seen = this.#takes;
          return;
        }
        this.#retired.length = 0;
        clearInterval(this.#timer);
        this.#timer = undefined;
      }, SLABS_IDLE_MS);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Drops the retired slabs and the timer (the pump stops). */
  clear(): void {
    this.#retired.length = 0;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
