import { describe, expect, test } from "bun:test";
import * as packet from "dns-packet";
import { deepFreeze, type Endpoint, type RouteTable, type ServiceRecord } from "../../src/control/index.ts";
import { writeTemplateReply } from "../../src/dns/answer.ts";
import { lookup, type Zone } from "../../src/dns/templates.ts";
import { compileZone, createZoneCompiler } from "../../src/dns/zone.ts";
import { parseQuery, PARSE_OK, Query } from "../../src/dns/wire.ts";

const ep = (ip: string, hostname = ""): Endpoint => ({ ip, port: 8080, node: "n1", ready: true, hostname, zone: "" });
const svc = (s: Partial<ServiceRecord> & { name: string }): ServiceRecord => ({
  namespace: "default", type: "ClusterIP", clusterIPs: [], externalName: "", ports: [], endpoints: [], ...s,
});
const table = (services: ServiceRecord[], version = 1): RouteTable =>
  deepFreeze({ version, compiledAt: 0, ports: [], byKey: {}, services });

const TABLE = table([
  svc({ name: "web", clusterIPs: ["10.96.0.10", "fd00::10"], ports: [{ name: "http", port: 80, protocol: "TCP" }] }),
  svc({ name: "web", namespace: "prod", clusterIPs: ["10.96.1.10"] }),
  svc({ name: "db", type: "Headless", endpoints: [ep("10.1.0.1", "db-0"), ep("10.1.0.2")],
    ports: [{ name: "pg", port: 5432, protocol: "TCP" }] }),
  svc({ name: "ext", type: "ExternalName", externalName: "example.com." }),
  svc({ name: "Bad_Name!" }),
]);

/** Ask the zone like the server does; null when the name would be forwarded. */
function ask(zone: Zone, name: string, type: packet.RecordType = "A", limit = 65535, edns = false) {
  const buf = new Uint8Array(packet.encode({
    id: 77, flags: packet.RECURSION_DESIRED, questions: [{ name, type, class: "IN" }],
    additionals: edns ? [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as packet.Answer] : [],
  }));
  const q = new Query();
  expect(parseQuery(buf, buf.length, q)).toBe(PARSE_OK);
  const t = lookup(zone, q);
  if (!t) return null;
  const out = new Uint8Array(70000);
  const n = writeTemplateReply(t, buf, q, out, limit, { value: 0 });
  return packet.decode(Buffer.from(out.subarray(0, n)));
}
const rcode = (r: packet.DecodedPacket | null) => (r as { rcode?: string } | null)?.rcode;
const data = (r: packet.DecodedPacket | null) => (r?.answers ?? []).map((a) => (a as { data: unknown }).data);

describe("compileZone + writeTemplateReply", () => {
  const zone = compileZone(TABLE, { domain: "cluster.local", ttl: 30 });

  test("ClusterIP service: A and AAAA from clusterIPs, TTL, AA and RD echoed, id kept", () => {
    const r = ask(zone, "web.default.svc.cluster.local")!;
    expect(r.id).toBe(77);
    expect(r.flags! & 0x0400).toBeTruthy(); // AA
    expect(r.flags! & 0x0100).toBeTruthy(); // RD
    expect(rcode(r)).toBe("NOERROR");
    expect(data(r)).toEqual(["10.96.0.10"]);
    expect((r.answers![0] as { ttl?: number }).ttl).toBe(30);
    expect(data(ask(zone, "web.default.svc.cluster.local", "AAAA"))).toEqual(["fd00::10"]);
  });

  test("the question's case is echoed and answers point at it", () => {
    const r = ask(zone, "WEB.Default.Svc.Cluster.Local")!;
    expect(r.questions![0]!.name).toBe("WEB.Default.Svc.Cluster.Local");
    expect(r.answers![0]!.name).toBe("WEB.Default.Svc.Cluster.Local");
  });

  test("headless service: one A per endpoint, hostname and dashed-IP names, SRV with additionals", () => {
    expect(data(ask(zone, "db.default.svc.cluster.local")).sort()).toEqual(["10.1.0.1", "10.1.0.2"]);
    expect(data(ask(zone, "db-0.db.default.svc.cluster.local"))).toEqual(["10.1.0.1"]);
    expect(data(ask(zone, "10-1-0-2.db.default.svc.cluster.local"))).toEqual(["10.1.0.2"]);
    const srv = ask(zone, "_pg._tcp.db.default.svc.cluster.local", "SRV")!;
    expect(data(srv).map((d) => (d as packet.SrvAnswer["data"]).target).sort())
      .toEqual(["10-1-0-2.db.default.svc.cluster.local", "db-0.db.default.svc.cluster.local"]);
    expect(srv.additionals!.map((a) => a.name).sort())
      .toEqual(["10-1-0-2.db.default.svc.cluster.local", "db-0.db.default.svc.cluster.local"]);
  });

  test("SRV for a ClusterIP named port targets the service name", () => {
    const srv = ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV")!;
    expect(data(srv)).toEqual([{ priority: 0, weight: 100, port: 80, target: "web.default.svc.cluster.local" }]);
  });

  test("ExternalName answers a CNAME for every type", () => {
    for (const type of ["A", "AAAA", "CNAME", "TXT"] as const) {
      const r = ask(zone, "ext.default.svc.cluster.local", type)!;
      expect(r.answers![0]!.type).toBe("CNAME");
      expect(data(r)).toEqual(["example.com"]);
    }
  });

  test("PTR for ClusterIPs (v4 and v6) and headless endpoint IPs", () => {
    expect(data(ask(zone, "10.0.96.10.in-addr.arpa", "PTR"))).toEqual(["web.default.svc.cluster.local"]);
    expect(data(ask(zone, "1.0.1.10.in-addr.arpa", "PTR"))).toEqual(["db-0.db.default.svc.cluster.local"]);
    const v6 = "0.1." + "0.".repeat(28) + "d.f.ip6.arpa";
    expect(data(ask(zone, v6, "PTR"))).toEqual(["web.default.svc.cluster.local"]);
    expect(ask(zone, "9.9.9.9.in-addr.arpa", "PTR")).toBeNull(); // not ours: forwarded
  });

  test("unknown names in the zone: NXDOMAIN with SOA; other types and empty non-terminals: NODATA", () => {
    const nx = ask(zone, "nope.default.svc.cluster.local")!;
    expect(rcode(nx)).toBe("NXDOMAIN");
    expect(nx.authorities![0]!.type).toBe("SOA");
    expect((nx.authorities![0] as packet.SoaAnswer).data.minimum).toBe(30);
    for (const [name, type] of [["web.default.svc.cluster.local", "MX"], ["default.svc.cluster.local", "A"],
      ["svc.cluster.local", "A"], ["_tcp.db.default.svc.cluster.local", "SRV"]] as const) {
      const r = ask(zone, name, type)!;
      expect(rcode(r)).toBe("NOERROR");
      expect(r.answers).toEqual([]);
      expect(r.authorities![0]!.type).toBe("SOA");
    }
    expect(ask(zone, "cluster.local", "SOA")!.answers![0]!.type).toBe("SOA");
  });

  test("short forms: svc.ns.svc and svc.ns always, a single label only when unambiguous", () => {
    expect(data(ask(zone, "web.default.svc"))).toEqual(["10.96.0.10"]);
    expect(data(ask(zone, "web.prod"))).toEqual(["10.96.1.10"]);
    expect(data(ask(zone, "db"))).toHaveLength(2);
    expect(ask(zone, "web")).toBeNull(); // two namespaces have "web": forwarded, not guessed
    expect(ask(zone, "nope.default")).toBeNull(); // outside the zone: forwarded
    expect(ask(zone, "example.com")).toBeNull();
  });

  test("services whose names cannot be DNS names are skipped and reported", () => {
    expect(zone.skipped).toEqual(["default/Bad_Name!"]);
    const bad = compileZone(table([...TABLE.services, svc({ name: "bad-ext", type: "ExternalName", externalName: "a..b" })]),
      { domain: "cluster.local", ttl: 30 });
    expect(bad.skipped).toContain("default/bad-ext");
    expect(data(ask(bad, "web.default.svc.cluster.local"))).toEqual(["10.96.0.10"]);
  });

  test("dev mode serviceIP replaces ClusterIPs but not headless endpoints", () => {
    const dev = compileZone(TABLE, { domain: "cluster.local", ttl: 5, serviceIP: "127.0.0.1" });
    expect(data(ask(dev, "web.default.svc.cluster.local"))).toEqual(["127.0.0.1"]);
    expect(ask(dev, "web.default.svc.cluster.local", "AAAA")!.answers).toEqual([]);
    expect(data(ask(dev, "db.default.svc.cluster.local"))).toHaveLength(2);
  });

  test("a reply over the client's UDP size carries the answers that fit, with TC; EDNS gets an OPT back", () => {
    const many = table([svc({ name: "big", type: "Headless",
      endpoints: Array.from({ length: 200 }, (_, i) => ep(`10.2.${i >> 8}.${i & 0xff}`)) })]);
    const z = compileZone(many, { domain: "cluster.local", ttl: 30 });
    const small = ask(z, "big.default.svc.cluster.local", "A", 512)!;
    expect(small.flags! & 0x0200).toBeTruthy(); // TC
    // 512 bytes: header 12 + question 35 + 16 per A record -> 29 whole answers
    expect(small.answers).toHaveLength(Math.floor((512 - 12 - 35) / 16));
    const full = ask(z, "big.default.svc.cluster.local", "A", 65535, true)!;
    expect(full.flags! & 0x0200).toBeFalsy();
    expect(full.answers).toHaveLength(200);
    expect(full.additionals!.some((a) => a.type === "OPT")).toBe(true);
  });

  test("a new table version gives a new zone; the old one is untouched", () => {
    const next = compileZone(table([svc({ name: "new", clusterIPs: ["10.96.9.9"] })], 2), { domain: "cluster.local", ttl: 30 });
    expect(data(ask(next, "new.default.svc.cluster.local"))).toEqual(["10.96.9.9"]);
    expect(rcode(ask(next, "web.default.svc.cluster.local"))).toBe("NXDOMAIN");
    expect(data(ask(zone, "web.default.svc.cluster.local"))).toEqual(["10.96.0.10"]);
  });
});

describe("createZoneCompiler", () => {
  const question = (name: string, type: packet.RecordType = "A") => {
    const buf = new Uint8Array(packet.encode({ id: 1, questions: [{ name, type }] }));
    const q = new Query();
    parseQuery(buf, buf.length, q);
    return q;
  };

  test("unchanged services keep their templates, changed ones are rebuilt, the SOA follows the version", () => {
    const c = createZoneCompiler({ domain: "cluster.local", ttl: 30 });
    const z1 = c.compile(TABLE);
    const changed = table(TABLE.services.map((s) => (s.name === "db" ? { ...s, endpoints: [ep("10.1.0.9")] } : s)), 7);
    const z2 = c.compile(changed);
    expect(lookup(z2, question("web.default.svc.cluster.local"))).toBe(lookup(z1, question("web.default.svc.cluster.local")));
    expect(lookup(z2, question("db.default.svc.cluster.local"))).not.toBe(lookup(z1, question("db.default.svc.cluster.local")));
    expect(data(ask(z2, "db.default.svc.cluster.local"))).toEqual(["10.1.0.9"]);
    expect(ask(z2, "db-0.db.default.svc.cluster.local")!.answers).toEqual([]);
    expect(rcode(ask(z2, "db-0.db.default.svc.cluster.local"))).toBe("NXDOMAIN");
    const soaOf = (z: Zone) => (ask(z, "web.default.svc.cluster.local", "TXT")!.authorities![0] as packet.SoaAnswer).data.serial;
    expect(soaOf(z1)).toBe(1);
    expect(soaOf(z2)).toBe(7);
  });

  test("two services sharing an IP get one PTR set naming both", () => {
    const c = createZoneCompiler({ domain: "cluster.local", ttl: 30 });
    const shared = table([svc({ name: "a", clusterIPs: ["10.96.5.5"] }), svc({ name: "b", clusterIPs: ["10.96.5.5"] })]);
    const z = c.compile(shared);
    expect(data(ask(z, "5.5.96.10.in-addr.arpa", "PTR")).sort()).toEqual(["a.default.svc.cluster.local", "b.default.svc.cluster.local"]);
    const again = c.compile(table([...shared.services], 2));
    expect(data(ask(again, "5.5.96.10.in-addr.arpa", "PTR"))).toHaveLength(2);
  });

  test("a removed service disappears and a short name becomes unambiguous again", () => {
    const c = createZoneCompiler({ domain: "cluster.local", ttl: 30 });
    c.compile(TABLE);
    const z = c.compile(table(TABLE.services.filter((s) => !(s.name === "web" && s.namespace === "prod")), 2));
    expect(rcode(ask(z, "web.prod.svc.cluster.local"))).toBe("NXDOMAIN");
    expect(data(ask(z, "web"))).toEqual(["10.96.0.10"]);
  });
});

describe("incremental compiles equal fresh compiles", () => {
  /** Every name in a zone, dotted, sorted. */
  const namesOf = (z: Zone) => {
    const out: string[] = [];
    for (const v of z.entries.values()) {
      for (const e of Array.isArray(v) ? v : [v]) {
        const labels: string[] = [];
        for (let o = 0; e.name[o]! > 0; o += e.name[o]! + 1) labels.push(new TextDecoder().decode(e.name.subarray(o + 1, o + 1 + e.name[o]!)));
        out.push(labels.join(".") || ".");
      }
    }
    return out.sort();
  };
  const answerOf = (z: Zone, name: string, type: packet.RecordType) => {
    const r = ask(z, name, type);
    if (!r) return null;
    const rr = (xs?: packet.Answer[]) => (xs ?? []).map((a) => JSON.stringify([a.name, a.type, (a as { data?: unknown }).data])).sort();
    return { rcode: rcode(r), answers: rr(r.answers), authorities: rr(r.authorities), additionals: rr(r.additionals) };
  };

  test("200 random table edits: same names, same answers", () => {
    let seed = 42;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const services = new Map<string, ServiceRecord>();
    const randomService = (): ServiceRecord => {
      const name = ["web", "db", "api", "cache"][rnd(4)]!;
      const namespace = ["default", "prod", "dev"][rnd(3)]!;
      const ip = () => `10.0.${rnd(3)}.${rnd(4)}`; // small pools: shared IPs and PTR merges happen
      const kind = rnd(4);
      if (kind === 0) return svc({ name, namespace, type: "ExternalName", externalName: ["a.example", "b.example"][rnd(2)]! });
      if (kind === 1) {
        return svc({ name, namespace, type: "Headless", ports: [{ name: "p", port: 5, protocol: "TCP" }],
          endpoints: Array.from({ length: rnd(3) }, (_, i) => ep(ip(), rnd(2) ? `h${i}` : "")) });
      }
      return svc({ name, namespace, clusterIPs: rnd(5) ? [ip()] : [ip(), "fd00::1"], ports: rnd(2) ? [{ name: "http", port: 80, protocol: "TCP" }] : [] });
    };
    const c = createZoneCompiler({ domain: "cluster.local", ttl: 30 });
    for (let step = 1; step <= 200; step++) {
      const s = randomService();
      const key = `${s.namespace}/${s.name}`;
      if (rnd(3) === 0) services.delete(key);
      else services.set(key, s);
      const t = table([...services.values()].sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1)), step);
      const inc = c.compile(t);
      const fresh = compileZone(t, { domain: "cluster.local", ttl: 30 });
      const names = namesOf(fresh);
      expect(namesOf(inc)).toEqual(names);
      for (const name of [...names, "web", "nope.default.svc.cluster.local"]) {
        for (const type of ["A", "AAAA", "SRV", "PTR", "TXT", "SOA"] as const) {
          expect(answerOf(inc, name, type)).toEqual(answerOf(fresh, name, type));
        }
      }
    }
  }, 60_000); // CPU-bound: seconds on a loaded 2-core machine, not a timing claim
});
