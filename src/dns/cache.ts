// Bounded cache of forwarded answers, stored as wire bytes with the offsets of their TTL fields,
// so a hit is a copy plus a few patched bytes (no decode). Positive answers live for the minimum
// TTL of the answer section, negative ones (NXDOMAIN, NODATA) for the SOA minimum (RFC 2308).
import { HEADER_LEN, OPT_RR_LEN, Query, readName, sameName, TYPE_OPT, TYPE_SOA, writeOpt } from "./wire.ts";

/** Upper bound on any cached TTL: an upstream typo must not pin a record for days. */
export const CACHE_MAX_TTL_S = 3600;
/** Upper bound for negative answers (RFC 2308 suggests 1-3 hours max; we stay short). */
export const CACHE_MAX_NEGATIVE_TTL_S = 900;

export interface CacheEntry {
  readonly name: Uint8Array;
  readonly qtype: number;
  readonly qclass: number;
  /** Upstream reply without its OPT record; ID and question are patched per client. */
  readonly wire: Uint8Array;
  readonly ttlOffsets: Int32Array;
  readonly ttls: Uint32Array;
  /** Where each answer record ends in `wire`: a truncated reply carries those that fit. */
  readonly answerEnds: Int32Array;
  readonly storedAt: number;
  readonly expiresAt: number;
}

export class DnsCache {
  readonly #map = new Map<number, CacheEntry>();
  constructor(readonly max: number) {}

  get size(): number {
    return this.#map.size;
  }

  /** The live entry for q, refreshed as most recently used, or null. */
  get(q: Query, key: number, now: number): CacheEntry | null {
    const e = this.#map.get(key);
    if (e === undefined || e.qtype !== q.qtype || e.qclass !== q.qclass || !sameName(q, e.name)) return null;
    this.#map.delete(key);
    if (now >= e.expiresAt) return null;
    this.#map.set(key, e); // Map keeps insertion order: re-inserting makes it the newest
    return e;
  }

  /** A hash collision simply replaces the older entry: a cache may forget. */
  set(key: number, e: CacheEntry): void {
    this.#map.delete(key);
    this.#map.set(key, e);
    while (this.#map.size > this.max) {
      const oldest = this.#map.keys().next();
      if (oldest.done) break;
      this.#map.delete(oldest.value);
    }
  }

  clear(): void {
    this.#map.clear();
  }
}

export interface Prepared {
  readonly wire: Uint8Array;
  readonly ttlOffsets: Int32Array;
  readonly ttls: Uint32Array;
  readonly answerEnds: Int32Array;
  readonly rcode: number;
  /** Seconds this answer may be cached; 0 = do not cache. */
  readonly cacheTtl: number;
}

/** Walk an upstream reply: strip a trailing OPT, find TTL fields and the cache lifetime. */
export function prepareReply(raw: Uint8Array): Prepared | null {
  const len = raw.length;
  if (len < HEADER_LEN) return null;
  const scratch = new Query();
  let o = readName(raw, len, HEADER_LEN, scratch);
  if (o < 0 || o + 4 > len) return null;
  o += 4;
  const an = (raw[6]! << 8) | raw[7]!;
  const ns = (raw[8]! << 8) | raw[9]!;
  const ar = (raw[10]! << 8) | raw[11]!;
  const rcode = raw[3]! & 0x0f;
  const offsets: number[] = [];
  const ttls: number[] = [];
  const answerEnds: number[] = [];
  let minAnswer = Infinity;
  let negative = Infinity;
  let optAt = -1;
  for (let i = 0; i < an + ns + ar; i++) {
    const start = o;
    o = skipName(raw, len, o);
    if (o < 0 || o + 10 > len) return null;
    const type = (raw[o]! << 8) | raw[o + 1]!;
    const ttl = ((raw[o + 4]! << 24) | (raw[o + 5]! << 16) | (raw[o + 6]! << 8) | raw[o + 7]!) >>> 0;
    const rdlen = (raw[o + 8]! << 8) | raw[o + 9]!;
    if (o + 10 + rdlen > len) return null;
    if (type === TYPE_OPT) {
      if (i !== an + ns + ar - 1) return null; // only a trailing OPT can be cut cleanly
      optAt = start;
    } else {
      offsets.push(o + 4);
      ttls.push(ttl);
      if (i < an) {
        minAnswer = Math.min(minAnswer, ttl);
        answerEnds.push(o + 10 + rdlen);
      }
      if (type === TYPE_SOA && i >= an && i < an + ns && rdlen >= 20) {
        const m = o + 10 + rdlen - 4;
        const minimum = ((raw[m]! << 24) | (raw[m + 1]! << 16) | (raw[m + 2]! << 8) | raw[m + 3]!) >>> 0;
        negative = Math.min(ttl, minimum);
      }
    }
    o += 10 + rdlen;
  }
  let wire = raw.slice(0, optAt >= 0 ? optAt : o);
  if (optAt >= 0) {
    wire[10] = (ar - 1) >>> 8;
    wire[11] = (ar - 1) & 0xff;
  }
  let cacheTtl = 0;
  if (rcode === 0 && an > 0) cacheTtl = Math.min(minAnswer, CACHE_MAX_TTL_S);
  else if ((rcode === 3 || (rcode === 0 && an === 0)) && negative !== Infinity) {
    cacheTtl = Math.min(negative, CACHE_MAX_NEGATIVE_TTL_S);
  }
  wire[2] = wire[2]! & ~0x02; // we hold the whole answer: never pass TC on
  return {
    wire, ttlOffsets: Int32Array.from(offsets), ttls: Uint32Array.from(ttls), answerEnds: Int32Array.from(answerEnds),
    rcode, cacheTtl,
  };
}

/** Skip a possibly compressed name; -1 when it runs past the end or uses reserved label types. */
function skipName(buf: Uint8Array, len: number, off: number): number {
  let o = off;
  for (;;) {
    if (o >= len) return -1;
    const l = buf[o]!;
    if (l === 0) return o + 1;
    if ((l & 0xc0) === 0xc0) return o + 2 <= len ? o + 2 : -1;
    if (l > 63) return -1;
    o += 1 + l;
  }
}

/**
 * Write a cached (or just received) answer for a client: `head` holds the client's header and
 * question up to `qEnd`. TTLs are aged by the time spent in the cache.
 */
export function writeCachedReply(
  e: { wire: Uint8Array; ttlOffsets: Int32Array; ttls: Uint32Array; answerEnds: Int32Array; storedAt: number },
  head: Uint8Array, qEnd: number, hasOpt: boolean, limit: number, now: number, out: Uint8Array,
  truncated: { value: number },
): number {
  const w = e.wire;
  const opt = hasOpt ? OPT_RR_LEN : 0;
  const tc = w.length + opt > limit;
  // Truncated: the answers that fit (compression pointers only point backwards, so a prefix of
  // the message stays valid), no authority or additional records, TC set.
  let end = w.length;
  let patch = e.ttlOffsets.length;
  if (tc) {
    truncated.value++;
    const ends = e.answerEnds;
    let k = 0;
    while (k < ends.length && ends[k]! + opt <= limit) k++;
    end = k === 0 ? qEnd : ends[k - 1]!;
    patch = k;
  }
  if (end === w.length) out.set(w, 0);
  else for (let i = 0; i < end; i++) out[i] = w[i]!;
  if (tc) {
    out[2] = out[2]! | 0x02;
    out[6] = patch >>> 8;
    out[7] = patch & 0xff;
    out[8] = out[9] = out[10] = out[11] = 0;
  }
  const age = now > e.storedAt ? Math.floor((now - e.storedAt) / 1000) : 0;
  const offs = e.ttlOffsets;
  const ttls = e.ttls;
  for (let i = 0; i < patch; i++) {
    const t = ttls[i]! > age ? ttls[i]! - age : 0;
    const p = offs[i]!;
    out[p] = t >>> 24;
    out[p + 1] = (t >>> 16) & 0xff;
    out[p + 2] = (t >>> 8) & 0xff;
    out[p + 3] = t & 0xff;
  }
  out[0] = head[0]!;
  out[1] = head[1]!;
  out[2] = (out[2]! & 0xfe) | (head[2]! & 0x01);
  out[3] = out[3]! | 0x80;
  for (let i = HEADER_LEN; i < qEnd; i++) out[i] = head[i]!;
  if (!hasOpt) return end;
  const ar = ((out[10]! << 8) | out[11]!) + 1;
  out[10] = ar >>> 8;
  out[11] = ar & 0xff;
  return writeOpt(out, end);
}
