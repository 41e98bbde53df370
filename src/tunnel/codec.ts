// The two EdgeMesh stream headers (proto2, gogo-generated on the Go side), each sent as a varint
// length prefix then the message (go-msgio protoio's delimited format). Hand-written because the
// messages are tiny and fixed; a field is emitted only when set, like proto2 optional pointers.
import { FIELD_ACCEPTED_FEATURES, FIELD_FEATURES } from "./constants.ts";
import { TunnelError } from "./errors.ts";

/** EdgeMesh's MaxReadSize: the largest header message a reader accepts. */
export const MAX_HEADER_BYTES = 4096;

export const MsgType = { CONNECT: 0, SUCCESS: 1, FAILED: 2 } as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export interface ProxyMsg {
  type?: number;
  protocol?: string;
  nodeName?: string;
  ip?: string;
  port?: number;
  /** Our extension (field 100): features the opener speaks, see FEATURE_* in constants.ts. */
  features?: number;
  /** Our extension (field 101): features a SUCCESS from one of our agents accepted. */
  acceptedFeatures?: number;
}

export interface DiscoveryMsg {
  type?: number;
  /** "MDNS" or "DHT" in EdgeMesh. */
  protocol?: string;
  nodeName?: string;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

class Writer {
  bytes: number[] = [];
  varint(v: bigint): void {
    let x = BigInt.asUintN(64, v); // int32/enum negatives are sign-extended to 10 bytes in proto
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
  }
  int(field: number, v: number | undefined): void {
    if (v === undefined) return;
    this.varint(BigInt(field << 3));
    this.varint(BigInt(v | 0));
  }
  str(field: number, v: string | undefined): void {
    if (v === undefined) return;
    const b = enc.encode(v);
    this.varint(BigInt((field << 3) | 2));
    this.varint(BigInt(b.length));
    for (const x of b) this.bytes.push(x);
  }
  delimited(): Uint8Array {
    if (this.bytes.length > MAX_HEADER_BYTES) {
      throw new TunnelError("HEADER_TOO_LARGE", `header of ${this.bytes.length} bytes exceeds ${MAX_HEADER_BYTES}`);
    }
    const body = this.bytes;
    this.bytes = [];
    this.varint(BigInt(body.length));
    return Uint8Array.from([...this.bytes, ...body]);
  }
}

export function encodeProxy(m: ProxyMsg): Uint8Array {
  const w = new Writer();
  w.int(1, m.type);
  w.str(2, m.protocol);
  w.str(3, m.nodeName);
  w.str(4, m.ip);
  w.int(5, m.port);
  w.int(FIELD_FEATURES, m.features);
  w.int(FIELD_ACCEPTED_FEATURES, m.acceptedFeatures);
  return w.delimited();
}

export function encodeDiscovery(m: DiscoveryMsg): Uint8Array {
  const w = new Writer();
  w.int(1, m.type);
  w.str(2, m.protocol);
  w.str(3, m.nodeName);
  return w.delimited();
}

/** Reads a base-128 varint at `pos`; undefined when `buf` ends first (more bytes may come). */
export function readVarint(buf: Uint8Array, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  for (let shift = 0, i = pos; i < buf.length; i++, shift += 7) {
    const b = buf[i]!;
    if (shift >= 35) throw new TunnelError("MALFORMED_HEADER", "length varint longer than 5 bytes");
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  return undefined;
}

/** Field walker shared by both messages: varints as numbers, length-delimited as bytes. */
function walk(body: Uint8Array, on: (field: number, v: number | Uint8Array) => void): void {
  let pos = 0;
  while (pos < body.length) {
    const key = readVarint(body, pos);
    if (!key) throw new TunnelError("MALFORMED_HEADER", "truncated field key");
    pos = key.next;
    const field = Math.floor(key.value / 8);
    const wire = key.value & 7;
    if (field === 0) throw new TunnelError("MALFORMED_HEADER", "field number 0");
    if (wire === 0) {
      const v = readLongVarint(body, pos);
      pos = v.next;
      on(field, v.value);
    } else if (wire === 2) {
      const len = readVarint(body, pos);
      if (!len || len.next + len.value > body.length) throw new TunnelError("MALFORMED_HEADER", "truncated bytes field");
      const bytes = body.subarray(len.next, len.next + len.value);
      pos = len.next + len.value;
      on(field, bytes);
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4; // unknown fixed64/fixed32: skip
      if (pos > body.length) throw new TunnelError("MALFORMED_HEADER", "truncated fixed field");
    } else {
      throw new TunnelError("MALFORMED_HEADER", `unsupported wire type ${wire}`);
    }
  }
}

/** A 64-bit varint truncated to int32 (how proto reads int32/enum fields). */
function readLongVarint(buf: Uint8Array, pos: number): { value: number; next: number } {
  let v = 0n;
  for (let shift = 0n, i = pos; i < buf.length && shift < 70n; i++, shift += 7n) {
    const b = buf[i]!;
    v |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return { value: Number(BigInt.asIntN(32, v)), next: i + 1 };
  }
  throw new TunnelError("MALFORMED_HEADER", "truncated varint field");
}

function num(field: number, v: number | Uint8Array): number {
  if (typeof v !== "number") throw new TunnelError("MALFORMED_HEADER", `field ${field} should be a varint`);
  return v;
}

function str(field: number, v: number | Uint8Array): string {
  if (typeof v === "number") throw new TunnelError("MALFORMED_HEADER", `field ${field} should be a string`);
  try {
    return dec.decode(v);
  } catch {
    throw new TunnelError("MALFORMED_HEADER", `field ${field} is not valid UTF-8`);
  }
}

/** Decodes a Proxy message body (without its length prefix). */
export function decodeProxyBody(body: Uint8Array): ProxyMsg {
  const m: ProxyMsg = {};
  walk(body, (f, v) => {
    if (f === 1) m.type = num(f, v);
    else if (f === 2) m.protocol = str(f, v);
    else if (f === 3) m.nodeName = str(f, v);
    else if (f === 4) m.ip = str(f, v);
    else if (f === 5) m.port = num(f, v);
    else if (f === FIELD_FEATURES) m.features = num(f, v);
    else if (f === FIELD_ACCEPTED_FEATURES) m.acceptedFeatures = num(f, v);
  });
  return m;
}

/** Decodes a Discovery message body (without its length prefix). */
export function decodeDiscoveryBody(body: Uint8Array): DiscoveryMsg {
  const m: DiscoveryMsg = {};
  walk(body, (f, v) => {
    if (f === 1) m.type = num(f, v);
    else if (f === 2) m.protocol = str(f, v);
    else if (f === 3) m.nodeName = str(f, v);
  });
  return m;
}

/**
 * Splits one delimited message off the front of `buf`. Returns undefined when more bytes are
 * needed; throws HEADER_TOO_LARGE as soon as the prefix announces more than the limit.
 */
export function splitDelimited(buf: Uint8Array, max = MAX_HEADER_BYTES): { body: Uint8Array; rest: Uint8Array } | undefined {
  const len = readVarint(buf, 0);
  if (!len) return undefined;
  if (len.value > max) throw new TunnelError("HEADER_TOO_LARGE", `header announces ${len.value} bytes, limit ${max}`);
  if (buf.length < len.next + len.value) return undefined;
  return { body: buf.subarray(len.next, len.next + len.value), rest: buf.subarray(len.next + len.value) };
}

/** Decodes one complete delimited Proxy message (the whole buffer, nothing after it). */
export function decodeProxy(buf: Uint8Array): ProxyMsg {
  const parts = splitDelimited(buf);
  if (!parts) throw new TunnelError("MALFORMED_HEADER", "truncated header");
  if (parts.rest.length) throw new TunnelError("MALFORMED_HEADER", `${parts.rest.length} bytes after the header`);
  return decodeProxyBody(parts.body);
}

export function decodeDiscovery(buf: Uint8Array): DiscoveryMsg {
  const parts = splitDelimited(buf);
  if (!parts) throw new TunnelError("MALFORMED_HEADER", "truncated header");
  if (parts.rest.length) throw new TunnelError("MALFORMED_HEADER", `${parts.rest.length} bytes after the header`);
  return decodeDiscoveryBody(parts.body);
}
