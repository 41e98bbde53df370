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
