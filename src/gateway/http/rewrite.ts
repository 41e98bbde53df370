// The request head as sent upstream, built into one reused scratch buffer so head (and a small
// body that came with it) leave in a single write. Header lines are copied as bytes; only what
// changes is written anew: the target (rewrite.uri), Host (rewrite.authority), the route's header
// set/add/remove, hop-by-hop headers dropped (Connection, Keep-Alive, TE, Proxy-Connection: the
// gateway keeps its own upstream connections alive), and X-Forwarded-For / -Proto as Envoy adds
// them. The response head is forwarded as it came unless the route changes response headers.

import type { HeaderOps, HttpMatch, HttpRoute } from "../../control/index.ts";
import { copyBytes, equalsLower } from "./bytes.ts";
import type { RequestHead } from "./request-head.ts";
import type { ResponseHead } from "./response-head.ts";

export class Scratch {
  buf: Uint8Array;
  len = 0;
  constructor(initial: number) {
    this.buf = new Uint8Array(initial);
  }
  reserve(extra: number): void {
    const need = this.len + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    copyBytes(this.buf, 0, this.len, next, 0);
    this.buf = next;
  }
  bytes(src: Uint8Array, start: number, end: number): void {
    const n = end - start;
    this.reserve(n);
    const b = this.buf;
    let at = this.len;
    // A loop beats the native call only for a few bytes (a version, a short target).
    if (n < 16) for (let i = start; i < end; i++) b[at++] = src[i]!;
    else copyBytes(src, start, end, b, at);
    this.len += n;
  }
  /** Latin-1 / ASCII text (header values are checked at compile to hold no CR/LF). */
  text(s: string): void {
    this.reserve(s.length);
    const b = this.buf;
    let at = this.len;
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i) & 0xff;
    this.len = at;
  }
}

const CRLF = "\r\n";

/** What the rewrite needs besides the head and the route. */
export interface UpstreamHeadContext {
  clientIp: string;
  /** "http" or "https": X-Forwarded-Proto. */
  proto: string;
  /** The match that chose the route (its uri prefix is what rewrite.uri replaces). */
  match: HttpMatch | null;
}

function removed(ops: HeaderOps | null, buf: Uint8Array, s: number, e: number): boolean {
  if (ops === null) return false;
  for (let i = 0; i < ops.remove.length; i++) if (equalsLower(buf, s, e, ops.remove[i]!)) return true;
  for (let i = 0; i < ops.set.length; i++) if (equalsLower(buf, s, e, ops.set[i]![0])) return true;
  return false;
}

/** The target sent upstream after rewrite.uri (Envoy's prefix_rewrite semantics). */
export function rewrittenTarget(h: RequestHead, route: HttpRoute, match: HttpMatch | null): string {
  const rw = route.rewriteUri!;
  const m = match?.uri;
  if (m !== undefined && m !== null && m.kind === "prefix") {
    const rest = h.target.slice(m.value.length);
    return rw + rest;
  }
  return h.query === "" ? rw : `${rw}?${h.query}`;
}

/** Writes the upstream request head into `out` (from out.len); returns nothing, out.len advances. */
export function writeUpstreamHead(h: RequestHead, route: HttpRoute, c: UpstreamHeadContext, out: Scratch): void {
  const buf = h.buf;
  out.reserve(h.end - h.start + 256);
  // Request line: method, target (rewritten or as sent, origin-form), version as sent.
  out.text(h.method);
  out.text(" ");
  if (route.rewriteUri !== null) out.text(rewrittenTarget(h, route, c.match));
  else if (h.targetEnd > h.targetStart) out.bytes(buf, h.targetStart, h.targetEnd);
  else out.text("/");
  out.text(" ");
  out.bytes(buf, h.lineEnd - 8, h.lineEnd);
  out.text(CRLF);
  const ops = route.requestHeaders;
  // Header lines: copy runs of kept lines in one go (no closure: this runs per request).
  let runStart = -1;
  let runEnd = -1;
  for (let i = 0; i < h.count; i++) {
    const ls = h.lineStart[i]!;
    const next = h.lineNext[i]!;
    let keep = true;
    if (h.hop[i] === 1) keep = h.upgrade && equalsLower(buf, h.nameStart[i]!, h.nameEnd[i]!, "connection");
    else if (i === h.hostIndex && route.rewriteAuthority !== null) keep = false;
    else if (i === h.xffIndex) keep = false;
    else if (ops !== null && removed(ops, buf, h.nameStart[i]!, h.nameEnd[i]!)) keep = false;
    else if (h.nameEnd[i]! - h.nameStart[i]! === 17 && equalsLower(buf, h.nameStart[i]!, h.nameEnd[i]!, "x-forwarded-proto")) keep = false;
    if (!keep) {
      if (runStart >= 0) out.bytes(buf, runStart, runEnd);
      runStart = -1;
      continue;
    }
    // Bare-LF lines are copied as they are; upstreams accept what the client sent.
    if (runStart < 0) runStart = ls;
    runEnd = next;
  }
  if (runStart >= 0) out.bytes(buf, runStart, runEnd);
  if (route.rewriteAuthority !== null) {
    out.text("host: ");
    out.text(route.rewriteAuthority);
    out.text(CRLF);
  } else if (h.hostIndex < 0 && h.host !== "") {
    out.text("host: ");
    out.text(h.host);
    out.text(CRLF);
  }
  out.text("x-forwarded-for: ");
  if (h.xffIndex >= 0) {
    out.bytes(buf, h.valueStart[h.xffIndex]!, h.valueEnd[h.xffIndex]!);
    out.text(", ");
  }
  out.text(c.clientIp);
  out.text(CRLF);
  out.text("x-forwarded-proto: ");
  out.text(c.proto);
  out.text(CRLF);
  if (ops !== null) {
    for (let i = 0; i < ops.set.length; i++) header(out, ops.set[i]!);
    for (let i = 0; i < ops.add.length; i++) header(out, ops.add[i]!);
  }
  out.text(CRLF);
}

function header(out: Scratch, kv: readonly [string, string]): void {
  out.text(kv[0]);
  out.text(": ");
  out.text(kv[1]);
  out.text(CRLF);
}

/**
 * The response head with the route's response header changes applied, into `out`. `close`:
 * the gateway closes the client after this response, so it says "connection: close" (instead
 * of any Connection header the upstream sent), as RFC 9112 9.6 asks of a closing server.
 */
export function writeResponseHead(buf: Uint8Array, r: ResponseHead, ops: HeaderOps | null, close: boolean, out: Scratch): void {
  out.reserve(r.end - r.start + 256);
  out.bytes(buf, r.start, r.headersStart);
  let i = r.headersStart;
  while (i < r.blankStart) {
    let e = i;
    while (e < r.blankStart && buf[e] !== 10) e++;
    const next = e + 1;
    let ne = i;
    while (ne < e && buf[ne] !== 58) ne++;
    const drop = (ops !== null && removed(ops, buf, i, ne)) || (close && equalsLower(buf, i, ne, "connection"));
    if (!drop) out.bytes(buf, i, next);
    i = next;
  }
  if (ops !== null) {
    for (let k = 0; k < ops.set.length; k++) header(out, ops.set[k]!);
    for (let k = 0; k < ops.add.length; k++) header(out, ops.add[k]!);
  }
  if (close) out.text("connection: close\r\n");
  out.text(CRLF);
}
