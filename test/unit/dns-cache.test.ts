import { describe, expect, test } from "bun:test";
import * as packet from "dns-packet";
import { type CacheEntry, DnsCache, prepareReply, writeCachedReply } from "../../src/dns/cache.ts";
import { buildQuery } from "../../src/dns/upstream.ts";
import { encodeName, mixHash, parseQuery, Query } from "../../src/dns/wire.ts";

const reply = (p: Partial<packet.Packet>) => new Uint8Array(packet.encode({
  id: 9, type: "response", flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE,
  questions: [{ name: "x.example", type: "A", class: "IN" }], ...p,
}));
const soa = (ttl: number, minimum: number): packet.Answer => ({
  name: "example", type: "SOA", ttl,
  data: { mname: "ns.example", rname: "h.example", serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
});
const a = (ttl: number, ip: string): packet.Answer => ({ name: "x.example", type: "A", ttl, data: ip });
const rcodeOf = (p: packet.DecodedPacket) => (p as { rcode?: string }).rcode;

function parsed(name: string, type: packet.RecordType = "A", edns = false) {
  const buf = new Uint8Array(packet.encode({ id: 4242, flags: packet.RECURSION_DESIRED, questions: [{ name, type }],
    additionals: edns ? [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as packet.Answer] : [] }));
  const q = new Query();
  parseQuery(buf, buf.length, q);
  return { buf, q, key: mixHash(mixHash(q.hash, q.qtype), q.qclass) };
}

function entry(raw: Uint8Array, storedAt: number): CacheEntry {
  const p = prepareReply(raw)!;
  return { name: encodeName("x.example"), qtype: 1, qclass: 1, wire: p.wire, ttlOffsets: p.ttlOffsets, ttls: p.ttls,
    answerEnds: p.answerEnds,
    storedAt, expiresAt: storedAt + p.cacheTtl * 1000 };
}

describe("prepareReply", () => {
  test("positive answers are cached for the minimum answer TTL; OPT is stripped", () => {
    const p = prepareReply(reply({ answers: [a(300, "1.2.3.4"), a(60, "1.2.3.5")],
      additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as packet.Answer] }))!;
    expect(p.cacheTtl).toBe(60);
    expect(p.ttls.length).toBe(2);
    const d = packet.decode(Buffer.from(p.wire));
    expect(d.additionals).toEqual([]);
    expect(d.answers!.length).toBe(2);
  });

  test("NXDOMAIN and NODATA are cached for min(SOA TTL, SOA minimum) (RFC 2308)", () => {
    const nx = reply({ flags: packet.RECURSION_DESIRED | 3, authorities: [soa(120, 45)] });
    expect(prepareReply(nx)!.cacheTtl).toBe(45);
    expect(prepareReply(reply({ authorities: [soa(20, 600)] }))!.cacheTtl).toBe(20);
    expect(prepareReply(reply({ flags: 3 }))!.cacheTtl).toBe(0); // no SOA: not cached
    expect(prepareReply(reply({ flags: 2, answers: [a(60, "1.1.1.1")] }))!.cacheTtl).toBe(0); // SERVFAIL
  });

  test("TTLs are capped and malformed replies are refused", () => {
    expect(prepareReply(reply({ answers: [a(999999, "1.2.3.4")] }))!.cacheTtl).toBe(3600);
    const raw = reply({ answers: [a(60, "1.2.3.4")] });
    expect(prepareReply(raw.subarray(0, raw.length - 2))).toBeNull();
    expect(prepareReply(raw.subarray(0, 5))).toBeNull();
  });
});

describe("writeCachedReply", () => {
  test("patches the client's ID, RD and question case, and ages TTLs", () => {
    const e = entry(reply({ answers: [a(60, "1.2.3.4")] }), 1_000);
    const { buf, q } = parsed("X.Example");
    const out = new Uint8Array(4096);
    const n = writeCachedReply(e, buf, q.questionEnd, q.hasOpt, 512, 1_000 + 25_500, out, { value: 0 });
    const d = packet.decode(Buffer.from(out.subarray(0, n)));
    expect(d.id).toBe(4242);
    expect(d.questions![0]!.name).toBe("X.Example");
    expect((d.answers![0] as { ttl?: number }).ttl).toBe(35);
    expect(d.flags! & 0x0100).toBeTruthy();
  });

  test("too big for the client's UDP size: the answers that fit, with TC; EDNS clients get an OPT", () => {
    const answers = Array.from({ length: 60 }, (_, i) => a(60, `10.0.0.${i}`));
    const e = entry(reply({ answers }), 0);
    const { buf, q } = parsed("x.example", "A", true);
    const out = new Uint8Array(4096);
    const t = { value: 0 };
    const n = writeCachedReply(e, buf, q.questionEnd, true, 512, 0, out, t);
    expect(n).toBeLessThanOrEqual(512);
    const small = packet.decode(Buffer.from(out.subarray(0, n)));
    expect(small.flags! & 0x0200).toBeTruthy();
    // dns-packet does not compress: 25 bytes per answer after 12 + 15 (question) + 11 (OPT)
    expect(small.answers).toHaveLength(Math.floor((512 - 12 - 15 - 11) / 25));
    expect((small.answers![0] as { data?: string }).data).toBe("10.0.0.0");
    expect(small.additionals!.map((x) => x.type)).toEqual(["OPT"]);
    expect(t.value).toBe(1);
    const big = packet.decode(Buffer.from(out.subarray(0, writeCachedReply(e, buf, q.questionEnd, true, 4096, 0, out, t))));
    expect(big.answers!.length).toBe(60);
    expect(big.additionals!.map((x) => x.type)).toEqual(["OPT"]);
    expect(rcodeOf(big)).toBe("NOERROR");
  });
});

describe("DnsCache", () => {
  test("entries expire at their TTL", () => {
    const cache = new DnsCache(10);
    const { q, key } = parsed("x.example");
    cache.set(key, entry(reply({ answers: [a(5, "1.2.3.4")] }), 0));
    expect(cache.get(q, key, 4_999)).not.toBeNull();
    expect(cache.get(q, key, 5_000)).toBeNull();
    expect(cache.size).toBe(0);
  });

  test("bounded in entries, least recently used evicted first", () => {
    const cache = new DnsCache(2);
    const e = entry(reply({ answers: [a(60, "1.2.3.4")] }), 0);
    const one = parsed("x.example", "A");
    const two = parsed("x.example", "AAAA");
    const three = parsed("x.example", "TXT");
    cache.set(one.key, { ...e, qtype: 1 });
    cache.set(two.key, { ...e, qtype: 28 });
    expect(cache.get(one.q, one.key, 1)).not.toBeNull(); // one is now the most recent
    cache.set(three.key, { ...e, qtype: 16 });
    expect(cache.size).toBe(2);
    expect(cache.get(two.q, two.key, 1)).toBeNull();
    expect(cache.get(one.q, one.key, 1)).not.toBeNull();
    expect(cache.get(three.q, three.key, 1)).not.toBeNull();
  });

  test("a different name under the same key is a miss, not a wrong answer", () => {
    const cache = new DnsCache(10);
    const { key } = parsed("x.example");
    cache.set(key, entry(reply({ answers: [a(60, "1.2.3.4")] }), 0));
    const other = parsed("y.example");
    expect(cache.get(other.q, key, 1)).toBeNull();
  });
});

test("buildQuery makes a recursive query with our EDNS size", () => {
  const d = packet.decode(Buffer.from(buildQuery(513, encodeName("x.example"), 28, 1)));
  expect(d.id).toBe(513);
  expect(d.flags! & 0x0100).toBeTruthy();
  expect(d.questions).toEqual([{ name: "x.example", type: "AAAA", class: "IN" }]);
  expect((d.additionals![0] as { udpPayloadSize?: number }).udpPayloadSize).toBe(1232);
});
