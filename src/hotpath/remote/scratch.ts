// Handing a datagram that lies inside a bigger chunk (a tunnel frame) to Bun's UDP send(), which
// takes no offset and length: the bytes are copied into one shared scratch buffer and sent from
// a view of exactly that length over it, so no view object is made per datagram. send() copies
// the bytes into the kernel before it returns (checked: a buffer changed right after send() is
// received unchanged), so the next datagram may reuse the scratch at once. Views are made once
// per length seen and kept (at most 65,536 small objects, ~4 MiB, even if every length occurs).

/** Node's Buffer#copy, which Bun implements natively for any Uint8Array: a memcpy, no garbage. */
const nativeCopy = Buffer.prototype.copy as unknown as (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number;

export function copyBytes(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number, len: number): void {
  nativeCopy.call(src, dst, dstOff, srcOff, srcOff + len);
}

const MAX_DATAGRAM_BYTES = 65535;
const SCRATCH = new Uint8Array(MAX_DATAGRAM_BYTES);
const VIEWS: (Uint8Array | undefined)[] = [];

/**
 * Bytes [off, off + len) of `buf` as a Uint8Array of exactly `len` bytes: `buf` itself when it is
 * exactly that, else the shared scratch view (valid until the next call: send it at once).
 */
export function datagramView(buf: Uint8Array, off: number, len: number): Uint8Array {
  if (off === 0 && len === buf.length) return buf;
  copyBytes(buf, off, SCRATCH, 0, len);
  let v = VIEWS[len];
  if (v === undefined) VIEWS[len] = v = SCRATCH.subarray(0, len);
  return v;
}
