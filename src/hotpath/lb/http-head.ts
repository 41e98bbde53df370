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
    if (line.slice(0, colon).trim().toLowerCase() === name) return line.slice(colon + 1).trim();
  }
  return "";
}
