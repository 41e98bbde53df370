// Where sealed Noise messages are written. Noise's own encrypt allocates one buffer per message
// and sends it behind a separate 2-byte length; ours (noise-frames.ts) lays a whole batch out in
// one buffer, prefix and ciphertext of each message back to back, so the batch costs one
// allocation and one socket write, and the pnet layer may XOR it in place. The seal functions
// (openssl.ts, noise.ts) do not see the batch: the framing code points the next seal at its slot
// with sealNextInto(); without that a seal gets a buffer of its own, with the same headroom.

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
