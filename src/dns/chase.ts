// ExternalName services: an A/AAAA question gets the CNAME plus the target's addresses, as
// CoreDNS's kubernetes plugin does, because stub resolvers (glibc, musl) do not chase a bare
// CNAME themselves. The target is resolved through the forwarder and cache; joining the two
// answers re-encodes the upstream records with dns-packet (off the hot path: only ExternalName).
import * as packet from "dns-packet";
import type { Template } from "./templates.ts";
import { HEADER_LEN, OPT_RR_LEN, writeOpt } from "./wire.ts";

const answerCodec = (packet as unknown as { answer: { encode(a: packet.Answer): Buffer } }).answer;

export interface Resolved {
  readonly wire: Uint8Array;
  readonly storedAt: number;
}

/**
 * Reply = the client's question, the CNAME from `cname`, then the target's answer records (TTLs
 * aged), with the target's rcode. TC with the question only when it does not fit in `limit`.
 */
export function writeChasedReply(
  cname: Template, target: Resolved, head: Uint8Array, qEnd: number, hasOpt: boolean, limit: number, now: number,
  out: Uint8Array, truncated: { value: number },
): number {
  let answers: Buffer[] = [];
  let rcode = 2; // SERVFAIL unless the target's reply decodes
  try {
    const d = packet.decode(Buffer.from(target.wire));
    const age = now > target.storedAt ? Math.floor((now - target.storedAt) / 1000) : 0;
    rcode = target.wire[3]! & 0x0f;
    answers = (d.answers ?? []).map((a) => {
      const ttl = (a as { ttl?: number }).ttl ?? 0;
      return answerCodec.encode({ ...a, ttl: ttl > age ? ttl - age : 0 } as packet.Answer);
    });
  } catch {
    answers = [];
  }
  let size = qEnd + cname.body.length + (hasOpt ? OPT_RR_LEN : 0);
  for (const a of answers) size += a.length;
  const tc = size > limit;
  if (tc) truncated.value++;
  out[0] = head[0]!;
  out[1] = head[1]!;
  out[2] = 0x80 | (tc ? 0x02 : 0) | (head[2]! & 0x01);
  out[3] = 0x80 | rcode;
  out[4] = 0;
  out[5] = 1;
  const an = tc ? 0 : 1 + answers.length;
  out[6] = an >>> 8;
  out[7] = an & 0xff;
  out[8] = out[9] = out[10] = 0;
  out[11] = hasOpt ? 1 : 0;
  for (let i = HEADER_LEN; i < qEnd; i++) out[i] = head[i]!;
  let o = qEnd;
  if (!tc) {
    out.set(cname.body, o);
    o += cname.body.length;
    for (const a of answers) {
      out.set(a, o);
      o += a.length;
    }
  }
  return hasOpt ? writeOpt(out, o) : o;
}
