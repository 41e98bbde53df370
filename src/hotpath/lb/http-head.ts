// Reading one header out of the first HTTP/1.x request head, for CONSISTENT_HASH_HEADER.
// Pure functions over bytes; the splice accumulates the head (bounded) and replays it upstream.

const CR = 13;
const LF = 10;

/**
 * Index just past the blank line ending the request head ("\r\n\r\n", or a bare "\n\n" which
 * HTTP/1.1 parsers also accept), or -1 if the head is not complete within `length` bytes.
 */
export function headEnd(buf: Uint8Array, length: number): number {
  for (let i = 0; i < length; i++) {
    if (buf[i] !== LF) continue;
    if (i + 1 < length && buf[i + 1] === LF) return i + 2;
    if (i + 2 < length && buf[i + 1] === CR && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

/**
 * headEnd for a head that arrives in pieces: `chunks` (total bytes `total`) has just grown by its
 * last chunk, and no earlier call found the end. Only what the new chunk can complete is looked
 * at (the chunk plus the 2 bytes before it), never the bytes already searched, so a client
 * dribbling its head a byte per packet costs linear time, not quadratic (32 KiB in 1-byte
 * chunks: ~0.4 s of CPU for re-joining and re-scanning everything each time). Returns the same
 * index headEnd would on the joined bytes, or -1.
 */
export function headEndAfterAppend(chunks: readonly Uint8Array[], total: number): number {
  const last = chunks[chunks.length - 1];
  if (last === undefined) return -1;
  const lastStart = total - last.length;
  // The 2 bytes before the new chunk (-1 where there are none), walking back across chunks.
  let b1 = -1; // byte at lastStart - 1
  let b2 = -1; // byte at lastStart - 2
  for (let k = chunks.length - 2, got = 0; k >= 0 && got < 2; k--) {
    const c = chunks[k]!;
    for (let j = c.length - 1; j >= 0 && got < 2; j--, got++) {
      if (got === 0) b1 = c[j]!;
      else b2 = c[j]!;
    }
  }
  for (let i = Math.max(0, lastStart - 2); i < total; i++) {
    if (byteAt(last, lastStart, b1, b2, i) !== LF) continue;
    if (i + 1 < total && byteAt(last, lastStart, b1, b2, i + 1) === LF) return i + 2;
    if (i + 2 < total && byteAt(last, lastStart, b1, b2, i + 1) === CR && byteAt(last, lastStart, b1, b2, i + 2) === LF) return i + 3;
  }
  return -1;
}

function byteAt(last: Uint8Array, lastStart: number, b1: number, b2: number, v: number): number {
  return v >= lastStart ? last[v - lastStart]! : v === lastStart - 1 ? b1 : b2;
}

/**
 * Value of header `name` (lower case) in the head bytes [0, end), trimmed; "" when absent (as Go's
 * Header.Get, so a missing header hashes like EdgeMesh). The first occurrence wins.
 */
export function headerValue(buf: Uint8Array, end: number, name: string): string {
  const text = Buffer.from(buf.buffer, buf.byteOffset, Math.min(end, buf.length)).toString("latin1");
  const lines = text.split(/\r?\n/);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    if (line.slice(0, colon).trim().toLowerCase() !== name) continue;
    const value = line.slice(colon + 1).trim();
    // A bare CR inside a line: RFC 9112 2.2 says treat it as SP (or reject the message).
    return value.includes("\r") ? value.replace(/\r/g, " ").trim() : value;
  }
  return "";
}
