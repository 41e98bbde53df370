// The multiplexed UDP framing (FEATURE_UDP_MUX) between two of our agents: one long-lived tunnel
// stream per peer carries every UDP flow to that peer, each datagram framed with its flow's id.
//
//   frame = kind (1 byte) | flow id (4 bytes, big-endian, never 0) | length (2 bytes, BE) | body
//   DATA  (0): body = one datagram of the flow (either direction)
//   OPEN  (1): opener -> far agent: body = port (2 bytes BE) | endpoint IP as ASCII text; the far
//              agent checks it as it checks a CONNECT and opens a socket to it
//   CLOSE (2): either direction: body = one reason byte (MUX_CLOSE_*); the flow is gone
//
// Flow ids are chosen by the opener, counting up per stream, and never reused on a stream, so a
// CLOSE crossing a late DATA is harmless (the DATA is dropped as unknown). Anything else (an
// unknown kind, flow id 0, an OPEN or CLOSE of the wrong size) is a protocol error: the stream is
// reset and its flows closed; the peer's next flow opens a new stream.
//
// The reader is a byte-at-a-time state machine over whatever chunks the stream hands in, so a
// frame (or a header) may straddle chunks anywhere. Bodies inside one chunk are handed on as
// (chunk, offset, length) without a view or a copy; a body that straddles chunks is assembled in
// the reader's own buffer, allocated once per reader and grown only to the largest frame seen.

import { copyBytes } from "./scratch.ts";

export const MUX_DATA = 0;
export const MUX_OPEN = 1;
export const MUX_CLOSE = 2;
export const MUX_HEADER_BYTES = 7;
/** Longest textual IP an OPEN may carry (IPv6 with an embedded IPv4 is 45 characters). */
export const MUX_MAX_IP_CHARS = 45;

/** Reasons carried by CLOSE. */
export const MUX_CLOSE_IDLE = 0;
export const MUX_CLOSE_REFUSED = 1;
export const MUX_CLOSE_EVICTED = 2;
export const MUX_CLOSE_ERROR = 3;

export interface MuxFrameHandler {
  /** `len` bytes of `buf` from `off`: valid only during the call. */
  onData(flow: number, buf: Uint8Array, off: number, len: number): void;
  onOpen(flow: number, ip: string, port: number): void;
  onClose(flow: number, reason: number): void;
}

const ASSEMBLY_INITIAL_BYTES = 2048;

export class MuxFrameReader {
  /** Set once a protocol error was seen; the reader ignores everything after it. */
  error: string | null = null;
  readonly #hdr = new Uint8Array(MUX_HEADER_BYTES);
  #hdrGot = 0;
  #kind = 0;
  #flow = 0;
  /** Body bytes still expected for the current frame (-1: reading a header). */
  #need = -1;
  #got = 0;
  #asm: Uint8Array | null = null;

  constructor(private readonly h: MuxFrameHandler) {}

  /** Feed one chunk. Returns false once the stream must be reset (see `error`). */
  push(b: Uint8Array): boolean {
    const n = b.length;
    let off = 0;
    while (off < n) {
      if (this.error !== null) return false;
      if (this.#need < 0) {
        // A header, straight from the chunk when it is all there.
        if (this.#hdrGot === 0 && n - off >= MUX_HEADER_BYTES) {
          this.#kind = b[off]!;
          this.#flow = ((b[off + 1]! << 24) | (b[off + 2]! << 16) | (b[off + 3]! << 8) | b[off + 4]!) >>> 0;
          this.#need = (b[off + 5]! << 8) | b[off + 6]!;
          off += MUX_HEADER_BYTES;
        } else {
          const hdr = this.#hdr;
          while (this.#hdrGot < MUX_HEADER_BYTES && off < n) hdr[this.#hdrGot++] = b[off++]!;
          if (this.#hdrGot < MUX_HEADER_BYTES) return true;
          this.#hdrGot = 0;
          this.#kind = hdr[0]!;
          this.#flow = ((hdr[1]! << 24) | (hdr[2]! << 16) | (hdr[3]! << 8) | hdr[4]!) >>> 0;
          this.#need = (hdr[5]! << 8) | hdr[6]!;
        }
        if (!this.#checkHeader()) return false;
        this.#got = 0;
        if (this.#need === 0) {
          this.#dispatch(b, off, 0);
          this.#need = -1;
        }
        continue;
      }
      const want = this.#need - this.#got;
      if (this.#got === 0 && n - off >= want) {
        // The whole body is in this chunk.
        this.#need = -1;
        this.#dispatch(b, off, want);
        off += want;
        continue;
      }
      let asm = this.#asm;
      if (asm === null || asm.length < this.#need) asm = this.#asm = new Uint8Array(Math.max(this.#need, ASSEMBLY_INITIAL_BYTES));
      const take = Math.min(want, n - off);
      copyBytes(b, off, asm, this.#got, take);
      this.#got += take;
      off += take;
      if (this.#got === this.#need) {
        const len = this.#need;
        this.#need = -1;
        this.#dispatch(asm, 0, len);
      }
    }
    return this.error === null;
  }

  #checkHeader(): boolean {
    const kind = this.#kind;
    const len = this.#need;
    if (this.#flow === 0) this.error = "flow id 0";
    else if (kind === MUX_DATA) return true;
    else if (kind === MUX_OPEN) {
      if (len < 3 || len > 2 + MUX_MAX_IP_CHARS) this.error = `OPEN of ${len} bytes`;
    } else if (kind === MUX_CLOSE) {
      if (len !== 1) this.error = `CLOSE of ${len} bytes`;
    } else this.error = `unknown frame kind ${kind}`;
    return this.error === null;
  }

  #dispatch(b: Uint8Array, off: number, len: number): void {
    const flow = this.#flow;
    const kind = this.#kind;
    if (kind === MUX_DATA) return this.h.onData(flow, b, off, len);
    if (kind === MUX_CLOSE) return this.h.onClose(flow, b[off]!);
    const port = (b[off]! << 8) | b[off + 1]!;
    const ip = asciiIp(b, off + 2, len - 2);
    if (ip === null || port === 0) {
      // A malformed target is the flow's problem, not the stream's: refuse the flow.
      this.h.onOpen(flow, "", 0);
      return;
    }
    this.h.onOpen(flow, ip, port);
  }
}

/** The IP text of an OPEN: hex digits, '.' and ':' only; null otherwise. Once per flow. */
function asciiIp(b: Uint8Array, off: number, len: number): string | null {
  let s = "";
  for (let i = off; i < off + len; i++) {
    const c = b[i]!;
    const ok = (c >= 0x30 && c <= 0x3a) || c === 0x2e || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
    if (!ok) return null;
    s += String.fromCharCode(c);
  }
  return s;
}

/** The 5 bytes that start every DATA frame of `flow` (kind and id): built once per flow. */
export function dataPrefix(flow: number): Uint8Array {
  return new Uint8Array([MUX_DATA, flow >>> 24, (flow >>> 16) & 0xff, (flow >>> 8) & 0xff, flow & 0xff]);
}

const LENGTHS: (Uint8Array | undefined)[] = [];
/** The 2-byte big-endian length, shared and immutable (a stream may hold it until written). */
export function lengthBytes(len: number): Uint8Array {
  let h = LENGTHS[len];
  if (h === undefined) {
    h = new Uint8Array([len >>> 8, len & 0xff]);
    LENGTHS[len] = h;
  }
  return h;
}

/** An OPEN frame for `flow` to ip:port (once per flow). */
export function openFrame(flow: number, ip: string, port: number): Uint8Array {
  const out = new Uint8Array(MUX_HEADER_BYTES + 2 + ip.length);
  writeHeader(out, MUX_OPEN, flow, 2 + ip.length);
  out[7] = port >>> 8;
  out[8] = port & 0xff;
  for (let i = 0; i < ip.length; i++) out[9 + i] = ip.charCodeAt(i) & 0x7f;
  return out;
}

/** A CLOSE frame for `flow` (once per flow). */
export function closeFrame(flow: number, reason: number): Uint8Array {
  const out = new Uint8Array(MUX_HEADER_BYTES + 1);
  writeHeader(out, MUX_CLOSE, flow, 1);
  out[7] = reason;
  return out;
}

/** A whole DATA frame in one new buffer (tests and fuzzing; the hot path never builds one). */
export function dataFrame(flow: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(MUX_HEADER_BYTES + payload.length);
  writeHeader(out, MUX_DATA, flow, payload.length);
  out.set(payload, MUX_HEADER_BYTES);
  return out;
}

function writeHeader(out: Uint8Array, kind: number, flow: number, len: number): void {
  out[0] = kind;
  out[1] = flow >>> 24;
  out[2] = (flow >>> 16) & 0xff;
  out[3] = (flow >>> 8) & 0xff;
  out[4] = flow & 0xff;
  out[5] = len >>> 8;
  out[6] = len & 0xff;
}
