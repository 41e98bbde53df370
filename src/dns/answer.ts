// Hot path: assemble a reply from a precomputed template into the server's one reply buffer.
// Header patched from the query, question copied from the query (so the client's case comes
// back), template body copied, OPT appended when the client sent one. No allocation.
import type { Template } from "./templates.ts";
import { HEADER_LEN, OPT_RR_LEN, type Query, writeOpt } from "./wire.ts";

/**
 * Write the reply for `t` into `out`; returns its length. When the full reply exceeds `limit`
 * (the client's UDP size) it carries the answers that fit, with TC set, so the client retries
 * over TCP. `truncated.value` is bumped for those.
 */
export function writeTemplateReply(
  t: Template, query: Uint8Array, q: Query, out: Uint8Array, limit: number, truncated: { value: number },
): number {
  const qEnd = q.questionEnd;
  const opt = q.hasOpt ? OPT_RR_LEN : 0;
  const full = qEnd + t.body.length + opt;
  const tc = full > limit;
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = 0x84 | (tc ? 0x02 : 0) | (query[2]! & 0x01); // QR, AA, TC, RD echoed
  out[3] = 0x80 | (query[3]! & 0x10) | t.rcode; // RA (we recurse for other names), CD echoed
  out[4] = 0;
  out[5] = 1;
  for (let i = HEADER_LEN; i < qEnd; i++) out[i] = query[i]!;
  let an = t.an;
  let ns = t.ns;
  let ar = t.ar;
  let bodyLen = t.body.length;
  if (tc) {
    // As many whole answers as fit; authority and additional records are dropped.
    truncated.value++;
    const ends = t.answerEnds;
    an = 0;
    while (an < ends.length && qEnd + ends[an]! + opt <= limit) an++;
    bodyLen = an === 0 ? 0 : ends[an - 1]!;
    ns = 0;
    ar = 0;
  }
  if (q.hasOpt) ar++;
  out[6] = an >>> 8;
  out[7] = an & 0xff;
  out[8] = ns >>> 8;
  out[9] = ns & 0xff;
  out[10] = ar >>> 8;
  out[11] = ar & 0xff;
  if (bodyLen === t.body.length) out.set(t.body, qEnd);
  else if (bodyLen > 0) out.set(t.body.subarray(0, bodyLen), qEnd); // TC only: a view is fine
  const o = qEnd + bodyLen;
  return q.hasOpt ? writeOpt(out, o) : o;
}

/** Header + question with an rcode and nothing else (SERVFAIL, REFUSED). `query` holds the
 * client's header and question up to `qEnd`. */
export function writeRcodeReply(query: Uint8Array, qEnd: number, hasOpt: boolean, rcode: number, out: Uint8Array): number {
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = 0x80 | (query[2]! & 0x01);
  out[3] = 0x80 | rcode;
  out[4] = 0;
  out[5] = 1;
  out[6] = out[7] = out[8] = out[9] = out[10] = 0;
  out[11] = hasOpt ? 1 : 0;
  for (let i = HEADER_LEN; i < qEnd; i++) out[i] = query[i]!;
  return hasOpt ? writeOpt(out, qEnd) : qEnd;
}

/**
 * The IPv4 address in a pod name "<a-b-c-d>.<ns>.pod.<domain>" (q already known to be in the
 * zone), as an unsigned 32-bit number, or -1 when q is not such a name.
 */
export function podIPv4(q: Query, domainLabels: number): number {
  if (q.labels !== domainLabels + 3) return -1;
  const n = q.name;
  const pod = q.labelStarts[2]!;
  if (n[pod] !== 3 || n[pod + 1] !== 112 || n[pod + 2] !== 111 || n[pod + 3] !== 100) return -1; // "pod"
  const len = n[0]!;
  let ip = 0;
  let part = 0;
  let v = -1;
  for (let i = 1; i <= len + 1; i++) {
    const c = i === len + 1 ? 45 : n[i]!;
    if (c === 45) { // "-"
      if (v < 0 || v > 255 || part === 4) return -1;
      ip = ip * 256 + v;
      part++;
      v = -1;
    } else if (c >= 48 && c <= 57) {
      v = v < 0 ? c - 48 : v * 10 + (c - 48);
      if (v > 255) return -1;
    } else {
      return -1;
    }
  }
  return part === 4 ? ip : -1;
}

/** One A record for the question (pod names): header, question, answer, OPT. */
export function writeAddressReply(query: Uint8Array, q: Query, ip: number, ttl: number, out: Uint8Array): number {
  const qEnd = q.questionEnd;
  out[0] = query[0]!;
  out[1] = query[1]!;
  out[2] = 0x84 | (query[2]! & 0x01);
  out[3] = 0x80 | (query[3]! & 0x10);
  out[4] = 0;
  out[5] = 1;
  out[6] = 0;
  out[7] = 1;
  out[8] = out[9] = out[10] = 0;
  out[11] = q.hasOpt ? 1 : 0;
  for (let i = HEADER_LEN; i < qEnd; i++) out[i] = query[i]!;
  let o = qEnd;
  out[o++] = 0xc0;
  out[o++] = 0x0c;
  out[o++] = 0;
  out[o++] = 1; // A
  out[o++] = 0;
  out[o++] = 1; // IN
  out[o++] = ttl >>> 24;
  out[o++] = (ttl >>> 16) & 0xff;
  out[o++] = (ttl >>> 8) & 0xff;
  out[o++] = ttl & 0xff;
  out[o++] = 0;
  out[o++] = 4;
  out[o++] = ip >>> 24;
  out[o++] = (ip >>> 16) & 0xff;
  out[o++] = (ip >>> 8) & 0xff;
  out[o++] = ip & 0xff;
  return q.hasOpt ? writeOpt(out, o) : o;
}
