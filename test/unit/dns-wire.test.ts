import { describe, expect, test } from "bun:test";
import * as packet from "dns-packet";
import { dashedIP, parseIPv4, parseIPv6, reverseName } from "../../src/dns/ip.ts";
import { parseResolvConf, parseUpstream, upstreamsFromResolvConf } from "../../src/dns/resolvconf.ts";
import {
  encodeName, hashName, inZone, PARSE_BADVERS, PARSE_DROP, PARSE_OK, parseQuery, Query, RCODE_FORMERR, RCODE_NOTIMP,
} from "../../src/dns/wire.ts";

const query = (name: string, opts: Partial<packet.Packet> = {}) =>
  new Uint8Array(packet.encode({ id: 0x1234, flags: packet.RECURSION_DESIRED, questions: [{ name, type: "A", class: "IN" }], ...opts }));

describe("parseQuery", () => {
  test("a plain query is parsed with a lower-cased name, type and class", () => {
    const buf = query("WeB.Default.SVC.cluster.local");
    const q = new Query();
    expect(parseQuery(buf, buf.length, q)).toBe(PARSE_OK);
    expect(q.id).toBe(0x1234);
    expect(q.qtype).toBe(1);
    expect(q.qclass).toBe(1);
    expect(q.questionEnd).toBe(buf.length);
    expect(Buffer.from(q.name.subarray(0, q.nameLen))).toEqual(Buffer.from(encodeName("web.default.svc.cluster.local")));
    expect(q.hash).toBe(hashName(encodeName("web.default.svc.cluster.local")));
    expect(q.hasOpt).toBe(false);
    expect(q.udpSize).toBe(512);
  });

  test("EDNS0 size is read and clamped to [512, 4096]", () => {
    const q = new Query();
    for (const [size, want] of [[1232, 1232], [100, 512], [65000, 4096]] as const) {
      const buf = query("a.b", { additionals: [{ type: "OPT", name: ".", udpPayloadSize: size } as packet.Answer] });
      expect(parseQuery(buf, buf.length, q)).toBe(PARSE_OK);
      expect(q.hasOpt).toBe(true);
      expect(q.udpSize).toBe(want);
    }
  });

  test("an EDNS version other than 0 is refused with BADVERS", () => {
    const buf = query("a.b", { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as packet.Answer] });
    buf[buf.length - 5] = 1; // OPT TTL: ext-rcode, VERSION, flags
    expect(parseQuery(buf, buf.length, new Query())).toBe(PARSE_BADVERS);
  });

  test("packets shorter than a header and responses are dropped", () => {
    const q = new Query();
    expect(parseQuery(new Uint8Array(11), 11, q)).toBe(PARSE_DROP);
    const resp = query("a.b");
    resp[2] = resp[2]! | 0x80;
    expect(parseQuery(resp, resp.length, q)).toBe(PARSE_DROP);
  });

  test("opcodes other than QUERY get NOTIMP, QDCOUNT != 1 gets FORMERR", () => {
    const q = new Query();
    const notify = query("a.b");
    notify[2] = notify[2]! | (4 << 3);
    expect(parseQuery(notify, notify.length, q)).toBe(RCODE_NOTIMP);
    const two = query("a.b");
    two[5] = 2;
    expect(parseQuery(two, two.length, q)).toBe(RCODE_FORMERR);
    const zero = query("a.b");
    zero[5] = 0;
    expect(parseQuery(zero, zero.length, q)).toBe(RCODE_FORMERR);
  });

  test("truncated names, lengths past the end and compression pointers get FORMERR", () => {
    const q = new Query();
    const full = query("abc.example");
    for (let cut = 12; cut < full.length; cut++) expect(parseQuery(full, cut, q)).toBe(RCODE_FORMERR);
    const loop = new Uint8Array([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect(parseQuery(loop, loop.length, q)).toBe(RCODE_FORMERR);
    const past = new Uint8Array([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 60, 97, 0, 0, 1, 0, 1]);
    expect(parseQuery(past, past.length, q)).toBe(RCODE_FORMERR);
    const optPast = query("a.b", { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as packet.Answer] });
    optPast[optPast.length - 1] = 50; // rdlength past the end
    expect(parseQuery(optPast, optPast.length, q)).toBe(RCODE_FORMERR);
  });

  test("names longer than 255 bytes are refused", () => {
    const long = Array.from({ length: 5 }, () => "a".repeat(60)).join(".");
    const buf = new Uint8Array(packet.encode({ id: 1, questions: [{ name: long, type: "A" }] }));
    expect(parseQuery(buf, buf.length, new Query())).toBe(RCODE_FORMERR);
  });
});

describe("names", () => {
  test("inZone matches the zone and names below it on label boundaries only", () => {
    const zone = encodeName("cluster.local");
    const q = new Query();
    const check = (name: string) => {
      const b = query(name);
      parseQuery(b, b.length, q);
      return inZone(q, zone);
    };
    expect(check("cluster.local")).toBe(true);
    expect(check("a.b.Cluster.Local")).toBe(true);
    expect(check("xcluster.local")).toBe(false);
    expect(check("cluster.local.evil")).toBe(false);
    expect(check("local")).toBe(false);
  });

  test("encodeName refuses empty and oversized labels", () => {
    expect(() => encodeName("a..b")).toThrow();
    expect(() => encodeName("x".repeat(64))).toThrow();
    expect(Array.from(encodeName("."))).toEqual([0]);
  });
});

describe("ip helpers", () => {
  test("IPv4 and IPv6 parse, reverse names follow RFC 1035 / RFC 3596", () => {
    expect(Array.from(parseIPv4("10.96.0.1")!)).toEqual([10, 96, 0, 1]);
    expect(parseIPv4("10.96.0.256")).toBeNull();
    expect(parseIPv4("fd00::1")).toBeNull();
    expect(reverseName(parseIPv4("10.96.0.1")!)).toBe("1.0.96.10.in-addr.arpa");
    const v6 = parseIPv6("fd00::1")!;
    expect(v6[0]).toBe(0xfd);
    expect(v6[15]).toBe(1);
    expect(reverseName(v6)).toBe("1." + "0.".repeat(29) + "d.f.ip6.arpa");
    expect(Array.from(parseIPv6("::ffff:1.2.3.4")!.subarray(10))).toEqual([255, 255, 1, 2, 3, 4]);
    expect(parseIPv6("1::2::3")).toBeNull();
    expect(parseIPv6("10.0.0.1")).toBeNull();
    expect(dashedIP("10.0.0.1")).toBe("10-0-0-1");
  });
});

describe("resolv.conf", () => {
  test("nameservers are read in order and our own listen address is skipped", () => {
    const text = "# comment\nsearch x\nnameserver 169.254.96.16\nnameserver 10.0.0.2\nnameserver fd00::53\n";
    expect(parseResolvConf(text)).toEqual(["169.254.96.16", "10.0.0.2", "fd00::53"]);
    const ups = upstreamsFromResolvConf(text, { host: "169.254.96.16", port: 53 });
    expect(ups).toEqual([{ host: "10.0.0.2", port: 53 }, { host: "fd00::53", port: 53 }]);
    expect(upstreamsFromResolvConf("nameserver 127.0.0.1\n", { host: "0.0.0.0", port: 53 })).toEqual([]);
  });

  test("upstream strings accept ip, ip:port and [v6]:port", () => {
    expect(parseUpstream("1.1.1.1")).toEqual({ host: "1.1.1.1", port: 53 });
    expect(parseUpstream("1.1.1.1:5353")).toEqual({ host: "1.1.1.1", port: 5353 });
    expect(parseUpstream("[::1]:5300")).toEqual({ host: "::1", port: 5300 });
    expect(parseUpstream("fd00::1")).toEqual({ host: "fd00::1", port: 53 });
    expect(() => parseUpstream("1.1.1.1:0")).toThrow();
  });
});
