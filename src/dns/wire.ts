// Hand-written DNS wire reading for the hot path: validate a query and lower-case its name into a
// reused scratch object. No dns-packet here: this runs per packet and must not allocate or throw.

export const HEADER_LEN = 12;
export const TYPE_A = 1;
export const TYPE_NS = 2;
export const TYPE_CNAME = 5;
export const TYPE_SOA = 6;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const TYPE_SRV = 33;
export const TYPE_OPT = 41;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

/** parseQuery result: the packet is not worth a reply (too short for an ID, or a response). */
export const PARSE_DROP = -1;
export const PARSE_OK = 0;
/** parseQuery result: EDNS version we do not speak (RFC 6891 6.1.3: answer BADVERS). */
export const PARSE_BADVERS = 16;

/** RFC 1035 limits. */
export const MAX_NAME_LEN = 255;
/** Plain DNS over UDP without EDNS0 (RFC 1035 4.2.1). */
export const UDP_LEGACY_SIZE = 512;
/** Largest UDP reply we send even when a client advertises more: avoids IP fragmentation. */
export const UDP_MAX_REPLY = 4096;
/** The payload size we advertise in our own OPT records (DNS flag day 2020). */
export const EDNS_ADVERTISED_SIZE = 1232;
/** Bytes of the OPT pseudo-RR we append: root name, type, class, ttl, rdlength 0. */
export const OPT_RR_LEN = 11;

/** One per server, reused for every query: the parse result of the packet in hand. */
export class Query {
  id = 0;
  /** Offset just past the question (name + type + class). */
  questionEnd = 0;
  qtype = 0;
  qclass = 0;
  hasOpt = false;
  /** Requestor's UDP payload size from EDNS0, or 512. */
  udpSize = UDP_LEGACY_SIZE;
  /** Lower-cased wire-format qname (length bytes included), nameLen bytes valid. */
  readonly name = new Uint8Array(MAX_NAME_LEN + 1);
  nameLen = 0;
  /** Offsets in `name` where each label starts (for the zone suffix check). */
  readonly labelStarts = new Int32Array(128);
  labels = 0;
  /** hashName() of the lower-cased name. */
  hash = 0;
}

/**
 * Validate a query and fill `q`. Returns PARSE_OK, PARSE_DROP, or an RCODE to answer with
 * (FORMERR, NOTIMP). Never throws; reads only inside [0, len).
 */
export function parseQuery(buf: Uint8Array, len: number, q: Query): number {
  if (len < HEADER_LEN) return PARSE_DROP;
  // QR set: a response sent to us. Answering it could start a reflection loop.
  if ((buf[2]! & 0x80) !== 0) return PARSE_DROP;
  q.id = (buf[0]! << 8) | buf[1]!;
  q.hasOpt = false;
  q.udpSize = UDP_LEGACY_SIZE;
  if ((buf[2]! & 0x78) !== 0) return RCODE_NOTIMP;
  if (buf[4] !== 0 || buf[5] !== 1) return RCODE_FORMERR;
  const end = readName(buf, len, HEADER_LEN, q);
  if (end < 0 || end + 4 > len) return RCODE_FORMERR;
  q.qtype = (buf[end]! << 8) | buf[end + 1]!;
  q.qclass = (buf[end + 2]! << 8) | buf[end + 3]!;
  q.questionEnd = end + 4;
  // EDNS0: only look for OPT when it is the first record after the question, which is where
  // every client puts it in a query (no answer/authority records).
  const an = (buf[6]! << 8) | buf[7]!;
  const ns = (buf[8]! << 8) | buf[9]!;
  const ar = (buf[10]! << 8) | buf[11]!;
  if (ar > 0 && an === 0 && ns === 0) {
    const o = q.questionEnd;
    if (o + OPT_RR_LEN <= len && buf[o] === 0 && buf[o + 1] === 0 && buf[o + 2] === TYPE_OPT) {
      const rdlen = (buf[o + 9]! << 8) | buf[o + 10]!;
      if (o + OPT_RR_LEN + rdlen > len) return RCODE_FORMERR;
      q.hasOpt = true;
      if (buf[o + 6] !== 0) return PARSE_BADVERS;
      const size = (buf[o + 3]! << 8) | buf[o + 4]!;
      q.udpSize = size < UDP_LEGACY_SIZE ? UDP_LEGACY_SIZE : size > UDP_MAX_REPLY ? UDP_MAX_REPLY : size;
    }
  }
  return PARSE_OK;
}

/**
 * Read an uncompressed name at `off`, lower-case it into q.name, record label starts and hash.
 * A compression pointer in a query's question can only point back into the header or into the
 * name itself (a loop), so any pointer is refused. Returns the offset after the name or -1.
 */
export function readName(buf: Uint8Array, len: number, off: number, q: Query): number {
  let o = off;
  let n = 0;
  let labels = 0;
  let h = FNV_OFFSET;
  for (;;) {
    if (o >= len) return -1;
    const l = buf[o]!;
    if (l === 0) break;
    if (l > 63) return -1; // pointer (0xC0) or reserved label types
    if (o + 1 + l > len || n + 1 + l + 1 > MAX_NAME_LEN) return -1;
    if (labels === 128) return -1;
    q.labelStarts[labels++] = n;
    q.name[n++] = l;
    h = Math.imul(h ^ l, FNV_PRIME);
    for (let i = 1; i <= l; i++) {
      let c = buf[o + i]!;
      if (c >= 65 && c <= 90) c += 32;
      q.name[n++] = c;
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    o += 1 + l;
  }
  q.name[n++] = 0;
  q.nameLen = n;
  q.labels = labels;
  q.hash = Math.imul(h ^ 0, FNV_PRIME);
  return o + 1;
}

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 16777619;

/** FNV-1a of a lower-cased wire name (terminating zero included), as readName computes it. */
export function hashName(name: Uint8Array, len = name.length): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ name[i]!, FNV_PRIME);
  return h; // int32: Map keys stay small integers, not doubles
}

/** Mix a 16-bit value (qtype, qclass) into a name hash. */
export function mixHash(h: number, v: number): number {
  return Math.imul(Math.imul(h ^ (v & 0xff), FNV_PRIME) ^ (v >>> 8), FNV_PRIME);
}

/** Byte equality of q.name with a stored lower-cased wire name. */
export function sameName(q: Query, name: Uint8Array): boolean {
  const n = q.nameLen;
  if (name.length !== n) return false;
  const a = q.name;
  for (let i = 0; i < n; i++) if (a[i] !== name[i]) return false;
  return true;
}

/** True when q.name is `zone` or a name below it (zone: lower-cased wire name). */
export function inZone(q: Query, zone: Uint8Array): boolean {
  const zl = zone.length;
  const n = q.nameLen;
  for (let i = 0; i <= q.labels; i++) {
    const start = i === q.labels ? n - 1 : q.labelStarts[i]!;
    if (n - start !== zl) continue;
    for (let j = 0; j < zl; j++) if (q.name[start + j] !== zone[j]) return false;
    return true;
  }
  return false;
}

/** Encode a dotted name as lower-cased wire format. Throws on names DNS cannot carry. */
export function encodeName(dotted: string): Uint8Array {
  const text = dotted.endsWith(".") ? dotted.slice(0, -1) : dotted;
  if (text === "") return new Uint8Array(1);
  // Compile time for 10k-service tables is dominated by this: one pass, no split/TextEncoder.
  const bytes = /^[\x00-\x7f]*$/.test(text) ? null : new TextEncoder().encode(text);
  const len = bytes ? bytes.length : text.length;
  if (len + 2 > MAX_NAME_LEN) throw new Error(`DNS name too long: ${dotted}`);
  const out = new Uint8Array(len + 2);
  let labelAt = 0;
  for (let i = 0; i <= len; i++) {
    const c = i === len ? 46 : bytes ? bytes[i]! : text.charCodeAt(i);
    if (c === 46) {
      const l = i - labelAt;
      if (l === 0 || l > 63) throw new Error(`bad DNS label in ${dotted}`);
      out[labelAt] = l;
      labelAt = i + 1;
    } else {
      out[i + 1] = c >= 65 && c <= 90 ? c + 32 : c;
    }
  }
  return out;
}

/** Write a header-only error reply (no question) for a query we could not or would not parse. */
export function writeErrorReply(query: Uint8Array, rcode: number, out: Uint8Array): number {
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = 0x80 | (query[2]! & 0x79); // QR, echo opcode and RD
  out[3] = 0x80 | rcode;
  for (let i = 4; i < HEADER_LEN; i++) out[i] = 0;
  return HEADER_LEN;
}

/** Append our OPT pseudo-RR at `o`; returns the new end. */
export function writeOpt(out: Uint8Array, o: number): number {
  out[o] = 0;
  out[o + 1] = 0;
  out[o + 2] = TYPE_OPT;
  out[o + 3] = EDNS_ADVERTISED_SIZE >>> 8;
  out[o + 4] = EDNS_ADVERTISED_SIZE & 0xff;
  for (let i = 5; i < OPT_RR_LEN; i++) out[o + i] = 0;
  return o + OPT_RR_LEN;
}
