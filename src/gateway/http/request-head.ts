// The HTTP/1.x request head: found in the received bytes, checked, and read only as far as
// routing and framing need. Strict where a lax parser is a security hole (request smuggling:
// Content-Length with Transfer-Encoding, conflicting lengths, obs-fold, whitespace before the
// colon), lenient where RFC 9112 allows it (bare LF line ends, empty lines before the request).
// One RequestHead per client connection is reused for every request: the parse records header
// offsets in typed arrays and makes only the strings routing reads (method, target, host).

import { ascii, equalsLower, hasToken, parseDecimal, TOKEN } from "./bytes.ts";

/** More header lines than this: 431. */
export const MAX_HEADER_LINES = 128;
/** Header slots a RequestHead starts with; doubled up to MAX_HEADER_LINES when a request needs more. */
const INITIAL_HEADER_SLOTS = 32;

export const PARSE_OK = 0;
/** HTTP/2 prior-knowledge preface ("PRI * HTTP/2.0"): pass the connection through. */
export const PARSE_H2 = 2;

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;

const METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE"];

/**
 * The string made from a byte range last time, kept with a copy of the bytes: a keep-alive
 * connection (and the next connection this object serves) usually sends the same Host and often
 * the same target again, which then cost a byte comparison instead of a new string.
 */
class StringCache {
  readonly bytes: Uint8Array;
  len = -1;
  str = "";
  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
  /** The cached string when buf[s, e) holds the same bytes, else null. */
  get(buf: Uint8Array, s: number, e: number): string | null {
    const n = e - s;
    if (n !== this.len) return null;
    const b = this.bytes;
    for (let i = 0; i < n; i++) if (b[i] !== buf[s + i]) return null;
    return this.str;
  }
  set(buf: Uint8Array, s: number, e: number, str: string): void {
    const n = e - s;
    if (n > this.bytes.length) {
      this.len = -1;
      return;
    }
    const b = this.bytes;
    for (let i = 0; i < n; i++) b[i] = buf[s + i]!;
    this.len = n;
    this.str = str;
  }
}

export class RequestHead {
  buf: Uint8Array = new Uint8Array(0);
  readonly #hostCache = new StringCache(128);
  readonly #targetCache = new StringCache(256);
  #cachedPath = "";
  #cachedQuery = "";
  /** The head is buf[start, end), blank line included. Every offset below is into buf. */
  start = 0;
  end = 0;
  method = "";
  /** As sent (origin-form, or the path of an absolute-form target). */
  target = "";
  /** target up to "?" */
  path = "";
  /** After "?" (without it), "" when none. */
  query = "";
  http11 = true;
  /** Normalised (lower case, no port): from Host, or from an absolute-form target. */
  host = "";
  /** Request line end (index of its line terminator start) and where header lines start. */
  lineEnd = 0;
  headersStart = 0;
  /** Where the blank line ending the header lines starts. */
  blankStart = 0;
  /** The origin-form target's bytes (for an absolute-form target: its path and query). */
  targetStart = 0;
  targetEnd = 0;
  count = 0;
  slots = INITIAL_HEADER_SLOTS;
  nameStart = new Int32Array(INITIAL_HEADER_SLOTS);
  nameEnd = new Int32Array(INITIAL_HEADER_SLOTS);
  valueStart = new Int32Array(INITIAL_HEADER_SLOTS);
  valueEnd = new Int32Array(INITIAL_HEADER_SLOTS);
  /** Start of each header line and of the line after it (for copying lines). */
  lineStart = new Int32Array(INITIAL_HEADER_SLOTS);
  lineNext = new Int32Array(INITIAL_HEADER_SLOTS);
  /** -1: none. */
  contentLength = -1;
  chunked = false;
  /** The client wants the connection closed after this exchange. */
  close = false;
  /** Connection: upgrade with an Upgrade header (WebSocket, h2c). */
  upgrade = false;
  /** Index of the Host header line, -1 when absent. */
  hostIndex = -1;
  /** Index of an X-Forwarded-For line, -1 when absent. */
  xffIndex = -1;
  /** Header lines that are hop-by-hop (Connection, Keep-Alive, ...): not forwarded. */
  hop = new Uint8Array(INITIAL_HEADER_SLOTS);

  /** Twice the slots (a request with many headers); false at MAX_HEADER_LINES. */
  grow(): boolean {
    if (this.slots >= MAX_HEADER_LINES) return false;
    const n = Math.min(MAX_HEADER_LINES, this.slots * 2);
    const g32 = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.nameStart = g32(this.nameStart);
    this.nameEnd = g32(this.nameEnd);
    this.valueStart = g32(this.valueStart);
    this.valueEnd = g32(this.valueEnd);
    this.lineStart = g32(this.lineStart);
    this.lineNext = g32(this.lineNext);
    const hop = new Uint8Array(n);
    hop.set(this.hop);
    this.hop = hop;
    this.slots = n;
    return true;
  }

  /** lowerHost of buf[s, e), from the cache when the bytes are the last ones seen. */
  hostOf(buf: Uint8Array, s: number, e: number): string {
    const c = this.#hostCache;
    const hit = c.get(buf, s, e);
    if (hit !== null) return hit;
    const host = lowerHost(buf, s, e);
    c.set(buf, s, e, host);
    return host;
  }

  /** target, path and query from the origin-form bytes buf[s, e). */
  setTarget(buf: Uint8Array, s: number, e: number): void {
    if (s >= e) {
      this.target = this.path = "/";
      this.query = "";
      return;
    }
    const c = this.#targetCache;
    const hit = c.get(buf, s, e);
    if (hit !== null) {
      this.target = hit;
      this.path = this.#cachedPath;
      this.query = this.#cachedQuery;
      return;
    }
    const target = ascii(buf, s, e);
    this.target = target;
    const q = target.indexOf("?");
    if (q < 0) {
      this.path = target;
      this.query = "";
    } else {
      this.path = target.slice(0, q);
      this.query = target.slice(q + 1);
    }
    c.set(buf, s, e, target);
    this.#cachedPath = this.path;
    this.#cachedQuery = this.query;
  }

  /** Value of the first header named `lower` (lower case), or null. */
  header(lower: string): string | null {
    for (let i = 0; i < this.count; i++) {
      if (equalsLower(this.buf, this.nameStart[i]!, this.nameEnd[i]!, lower)) return ascii(this.buf, this.valueStart[i]!, this.valueEnd[i]!);
    }
    return null;
  }
}

/**
 * Index just past the blank line that ends a head starting at `start` in buf[start, end), or -1.
 * `from` is where the previous search stopped (bytes before it held no terminator), so a head
 * arriving a byte at a time is scanned once overall.
 */
export function findHeadEnd(buf: Uint8Array, start: number, from: number, end: number): number {
  for (let i = Math.max(start, from - 3); i < end; i++) {
    if (buf[i] !== LF) continue;
    // "\n\n" or "\n\r\n". A line break at the very start is an empty line before the request
    // (skipped by the parser), not the blank line ending a head.
    if (i === start) continue;
    if (i + 1 < end && buf[i + 1] === LF) return i + 2;
    if (i + 2 < end && buf[i + 1] === CR && buf[i + 2] === LF) return i + 3;
  }
  return -1;
}

/**
 * Parses the head in buf[start, length) into `h`. Returns PARSE_OK, PARSE_H2, or the status to
 * answer with (400 malformed, 431 too many header lines, 501 unsupported transfer coding,
 * 505 unsupported version).
 */
export function parseRequestHead(buf: Uint8Array, start: number, length: number, h: RequestHead): number {
  h.buf = buf;
  h.start = start;
  h.end = length;
  h.count = 0;
  h.contentLength = -1;
  h.chunked = false;
  h.close = false;
  h.upgrade = false;
  h.hostIndex = -1;
  h.xffIndex = -1;
  h.host = "";
  let i = start;
  // Leading empty lines (a client's CRLF after a previous body) are ignored.
  while (i < length && (buf[i] === CR || buf[i] === LF)) i++;
  // Method
  const m0 = i;
  while (i < length && TOKEN[buf[i]!] === 1) i++;
  if (i === m0 || buf[i] !== SP) return 400;
  h.method = methodString(buf, m0, i);
  i++;
  const t0 = i;
  while (i < length && buf[i]! > SP && buf[i] !== 127) i++;
  if (i === t0 || buf[i] !== SP) return 400;
  const t1 = i;
  i++;
  // HTTP-version
  if (length - i < 8 || buf[i] !== 72 || buf[i + 1] !== 84 || buf[i + 2] !== 84 || buf[i + 3] !== 80 || buf[i + 4] !== 47 || buf[i + 6] !== 46) return 400;
  const major = buf[i + 5]! - 48;
  const minor = buf[i + 7]! - 48;
  i += 8;
  const lineEnd = i;
  if (buf[i] === CR) i++;
  if (buf[i] !== LF) return 400;
  i++;
  h.lineEnd = lineEnd;
  h.headersStart = i;
  if (major === 2 && minor === 0 && h.method === "PRI") return PARSE_H2;
  if (major !== 1 || (minor !== 0 && minor !== 1)) return major >= 2 && major <= 9 ? 505 : 400;
  h.http11 = minor === 1;
  let connClose = false;
  let connKeepAlive = false;
  let connUpgrade = false;
  let upgradeHeader = false;
  let te = false;
  // Header lines until the blank line.
  for (;;) {
    if (i >= length) return 400;
    if (buf[i] === LF || (buf[i] === CR && buf[i + 1] === LF)) {
      h.blankStart = i;
      break;
    }
    if (buf[i] === SP || buf[i] === HT) return 400; // obs-fold
    if (h.count === h.slots && !h.grow()) return 431;
    const ls = i;
    while (i < length && TOKEN[buf[i]!] === 1) i++;
    if (i === ls || buf[i] !== 58) return 400; // empty name or whitespace/garbage before ':'
    const ne = i;
    i++;
    while (i < length && (buf[i] === SP || buf[i] === HT)) i++;
    const vs = i;
    while (i < length && buf[i] !== LF) {
      const c = buf[i]!;
      if ((c < SP && c !== HT && c !== CR) || c === 127) return 400;
      if (c === CR && buf[i + 1] !== LF) return 400;
      i++;
    }
    if (i >= length) return 400;
    let ve = i;
    if (buf[ve - 1] === CR && ve > vs) ve--;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HT)) ve--;
    i++; // past LF
    const n = h.count++;
    h.lineStart[n] = ls;
    h.lineNext[n] = i;
    h.nameStart[n] = ls;
    h.nameEnd[n] = ne;
    h.valueStart[n] = vs;
    h.valueEnd[n] = ve;
    h.hop[n] = 0;
    const len = ne - ls;
    // Dispatch on the name's length first: most headers are compared with nothing.
    if (len === 4 && equalsLower(buf, ls, ne, "host")) {
      if (h.hostIndex >= 0) return 400;
      h.hostIndex = n;
    } else if (len === 14 && equalsLower(buf, ls, ne, "content-length")) {
      const v = parseDecimal(buf, vs, ve);
      if (v < 0 || (h.contentLength >= 0 && h.contentLength !== v)) return 400;
      h.contentLength = v;
    } else if (len === 17 && equalsLower(buf, ls, ne, "transfer-encoding")) {
      if (te) return 400;
      te = true;
      // The last coding must be chunked; anything else cannot be framed (RFC 9112 6.3).
      let e = ve;
      while (e > vs && buf[e - 1] !== 44 && buf[e - 1] !== SP) e--;
      if (!equalsLower(buf, e, ve, "chunked")) return ve > vs ? 501 : 400;
      h.chunked = true;
    } else if (len === 10 && equalsLower(buf, ls, ne, "connection")) {
      h.hop[n] = 1;
      if (hasToken(buf, vs, ve, "close")) connClose = true;
      if (hasToken(buf, vs, ve, "keep-alive")) connKeepAlive = true;
      if (hasToken(buf, vs, ve, "upgrade")) connUpgrade = true;
    } else if (len === 7 && equalsLower(buf, ls, ne, "upgrade")) {
      upgradeHeader = true;
    } else if (
      (len === 10 && equalsLower(buf, ls, ne, "keep-alive")) ||
      (len === 16 && equalsLower(buf, ls, ne, "proxy-connection")) ||
      (len === 2 && equalsLower(buf, ls, ne, "te"))
    ) {
      h.hop[n] = 1;
    } else if (len === 15 && equalsLower(buf, ls, ne, "x-forwarded-for")) {
      h.xffIndex = n;
    }
  }
  if (te && h.contentLength >= 0) return 400; // both framings: a smuggling attempt
  if (te && !h.http11) return 400;
  h.upgrade = connUpgrade && upgradeHeader;
  h.close = connClose || (!h.http11 && !connKeepAlive);
  // Target: origin-form, or absolute-form (its authority overrides Host, RFC 9112 3.2.2).
  let ps = t0;
  if (buf[t0] !== 47) {
    const abs = absoluteAuthority(buf, t0, t1);
    if (abs < 0) {
      // "*" (OPTIONS) and authority-form (CONNECT) carry no path to route on.
      if (!(t1 - t0 === 1 && buf[t0] === 42) && h.method !== "CONNECT") return 400;
    } else {
      h.host = lowerHost(buf, t0 + abs, hostEnd(buf, t0 + abs, t1));
      ps = pathStart(buf, t0 + abs, t1);
    }
  }
  if (h.host === "" && h.hostIndex >= 0) h.host = h.hostOf(buf, h.valueStart[h.hostIndex]!, h.valueEnd[h.hostIndex]!);
  if (h.http11 && h.hostIndex < 0) return 400; // RFC 9112 3.2: Host is required in HTTP/1.1
  h.targetStart = ps;
  h.targetEnd = t1;
  h.setTarget(buf, ps, t1);
  return PARSE_OK;
}

function methodString(buf: Uint8Array, s: number, e: number): string {
  for (let k = 0; k < METHODS.length; k++) {
    const m = METHODS[k]!;
    if (m.length !== e - s) continue;
    let same = true;
    for (let j = 0; j < m.length; j++) {
      if (buf[s + j] !== m.charCodeAt(j)) {
        same = false;
        break;
      }
    }
    if (same) return m;
  }
  return ascii(buf, s, e);
}

/** For "http://host[:port]/..." the offset of host from s, else -1. */
function absoluteAuthority(buf: Uint8Array, s: number, e: number): number {
  let i = s;
  while (i < e && buf[i] !== 58) i++;
  if (i + 2 >= e || buf[i + 1] !== 47 || buf[i + 2] !== 47) return -1;
  if (!equalsLower(buf, s, i, "http") && !equalsLower(buf, s, i, "https")) return -1;
  return i + 3 - s;
}

function hostEnd(buf: Uint8Array, s: number, e: number): number {
  let i = s;
  while (i < e && buf[i] !== 47 && buf[i] !== 63) i++;
  return i;
}

function pathStart(buf: Uint8Array, s: number, e: number): number {
  return hostEnd(buf, s, e);
}

/** Host (maybe with :port, or [v6]:port) in [s, e) -> lower case without port or trailing dot. */
export function lowerHost(buf: Uint8Array, s: number, e: number): string {
  if (s < e && buf[s] === 91) {
    let j = s + 1;
    while (j < e && buf[j] !== 93) j++;
    return ascii(buf, s + 1, j).toLowerCase();
  }
  let j = s;
  let upper = false;
  while (j < e && buf[j] !== 58) {
    const c = buf[j]!;
    if (c >= 65 && c <= 90) upper = true;
    j++;
  }
  if (j > s && buf[j - 1] === 46) j--;
  const str = ascii(buf, s, j);
  return upper ? str.toLowerCase() : str;
}
