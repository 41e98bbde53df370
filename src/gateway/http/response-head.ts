// The upstream's response head, read for framing only: status, Content-Length, chunked,
// Connection: close, and where the header lines are (for response header changes). The bytes
// are forwarded as they came unless the route changes response headers.

import { equalsLower, hasToken, parseDecimal } from "./bytes.ts";

const CR = 13;
const LF = 10;
const SP = 32;

export class ResponseHead {
  /** The head is buf[start, end); offsets below are into buf. */
  start = 0;
  end = 0;
  status = 0;
  http11 = true;
  contentLength = -1;
  chunked = false;
  /** The upstream closes after this response (Connection: close, or HTTP/1.0 without keep-alive). */
  close = false;
  /** Where header lines start and the index of the blank line. */
  headersStart = 0;
  blankStart = 0;
}

/** Parses buf[start, length) (a complete head). Returns false when it is not a valid response head. */
export function parseResponseHead(buf: Uint8Array, start: number, length: number, r: ResponseHead): boolean {
  r.start = start;
  r.end = length;
  r.contentLength = -1;
  r.chunked = false;
  r.close = false;
  const s = start;
  if (length - s < 12 || buf[s] !== 72 || buf[s + 1] !== 84 || buf[s + 2] !== 84 || buf[s + 3] !== 80 || buf[s + 4] !== 47 || buf[s + 5] !== 49 || buf[s + 6] !== 46) return false;
  r.http11 = buf[s + 7] === 49;
  if (buf[s + 8] !== SP) return false;
  const status = parseDecimal(buf, s + 9, s + 12);
  if (status < 100 || status > 999) return false;
  r.status = status;
  let i = s + 12;
  while (i < length && buf[i] !== LF) i++;
  i++;
  r.headersStart = i;
  let keepAlive = false;
  for (;;) {
    if (i >= length) return false;
    if (buf[i] === LF || (buf[i] === CR && buf[i + 1] === LF)) {
      r.blankStart = i;
      break;
    }
    const ls = i;
    while (i < length && buf[i] !== 58 && buf[i] !== LF) i++;
    if (buf[i] !== 58) return false;
    const ne = i;
    i++;
    while (i < length && (buf[i] === SP || buf[i] === 9)) i++;
    const vs = i;
    while (i < length && buf[i] !== LF) i++;
    let ve = i;
    while (ve > vs && (buf[ve - 1] === CR || buf[ve - 1] === SP || buf[ve - 1] === 9)) ve--;
    i++;
    const len = ne - ls;
    if (len === 14 && equalsLower(buf, ls, ne, "content-length")) {
      const v = parseDecimal(buf, vs, ve);
      if (v < 0 || (r.contentLength >= 0 && r.contentLength !== v)) return false;
      r.contentLength = v;
    } else if (len === 17 && equalsLower(buf, ls, ne, "transfer-encoding")) {
      let e = ve;
      while (e > vs && buf[e - 1] !== 44 && buf[e - 1] !== SP) e--;
      r.chunked = equalsLower(buf, e, ve, "chunked");
      // Not chunked last: the body runs until the upstream closes (RFC 9112 6.3 item 4).
      if (!r.chunked) r.close = true;
    } else if (len === 10 && equalsLower(buf, ls, ne, "connection")) {
      if (hasToken(buf, vs, ve, "close")) r.close = true;
      if (hasToken(buf, vs, ve, "keep-alive")) keepAlive = true;
    }
  }
  if (r.chunked) r.contentLength = -1;
  if (!r.http11 && !keepAlive) r.close = true;
  return true;
}

/** Body framing of a response to a request with `method`. */
export const BODY_NONE = 0;
export const BODY_LENGTH = 1;
export const BODY_CHUNKED = 2;
/** Until the upstream closes (no length, not chunked): the client connection closes after it. */
export const BODY_UNTIL_CLOSE = 3;

export function responseFraming(r: ResponseHead, method: string): number {
  if (method === "HEAD" || r.status === 204 || r.status === 304 || (r.status >= 100 && r.status < 200)) return BODY_NONE;
  if (r.chunked) return BODY_CHUNKED;
  if (r.contentLength >= 0) return r.contentLength === 0 ? BODY_NONE : BODY_LENGTH;
  return BODY_UNTIL_CLOSE;
}
