// The DNS server in-process on 127.0.0.1:0, queried by the real `dig` over UDP and TCP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as packet from "dns-packet";
import { deepFreeze, type Endpoint, type RouteTable, type ServiceRecord, type TableSource } from "../../src/control/index.ts";
import { createDnsServer, type DnsServer } from "../../src/dns/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";

const ep = (ip: string, hostname = ""): Endpoint => ({ ip, port: 80, node: "n1", ready: true, hostname, zone: "" });
const svc = (s: Partial<ServiceRecord> & { name: string }): ServiceRecord => ({
  namespace: "default", type: "ClusterIP", clusterIPs: [], externalName: "", ports: [], endpoints: [], ...s,
});

function services(extra: ServiceRecord[] = []): ServiceRecord[] {
  return [
    svc({ name: "web", clusterIPs: ["10.96.0.10", "fd00::10"], ports: [{ name: "http", port: 80, protocol: "TCP" }] }),
    svc({ name: "db", type: "Headless", endpoints: [ep("10.1.0.1", "db-0"), ep("10.1.0.2", "db-1")],
      ports: [{ name: "pg", port: 5432, protocol: "TCP" }] }),
    svc({ name: "ext", type: "ExternalName", externalName: "example.com" }),
    svc({ name: "big", type: "Headless", endpoints: Array.from({ length: 120 }, (_, i) => ep(`10.3.0.${i + 1}`)) }),
    ...extra,
  ];
}

/** A TableSource the test publishes to, like the control plane does. */
function source(initial: ServiceRecord[]) {
  let table: RouteTable = deepFreeze({ version: 1, compiledAt: 0, ports: [], byKey: {}, services: initial });
  const listeners = new Set<(t: RouteTable) => void>();
  const src: TableSource & { publish(s: ServiceRecord[]): void } = {
    current: () => table,
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    publish(s) {
      table = deepFreeze({ version: table.version + 1, compiledAt: 0, ports: [], byKey: {}, services: s });
      for (const l of listeners) l(table);
    },
  };
  return src;
}

interface DigResult { status: string; flags: string[]; answer: string[][]; authority: string[][]; additional: string[][]; raw: string }

async function dig(port: number, ...args: string[]): Promise<DigResult> {
  const proc = Bun.spawn(["dig", "@127.0.0.1", "-p", String(port), "+tries=1", "+time=2", "+nocookie", ...args], { stdout: "pipe", stderr: "pipe" });
  const raw = await new Response(proc.stdout).text();
  await proc.exited;
  const section = (title: string) => {
    const i = raw.indexOf(`;; ${title} SECTION:\n`);
    if (i < 0) return [];
    const body = raw.slice(i).split("\n").slice(1);
    const end = body.findIndex((l) => l.trim() === "");
    return body.slice(0, end < 0 ? body.length : end).map((l) => l.split(/\s+/));
  };
  return {
    status: /status: (\w+)/.exec(raw)?.[1] ?? "NONE",
    flags: (/;; flags: ([^;]*);/.exec(raw)?.[1] ?? "").trim().split(" "),
    answer: section("ANSWER"),
    authority: section("AUTHORITY"),
    additional: section("ADDITIONAL"),
    raw,
  };
}
const rdata = (rows: string[][]) => rows.map((r) => r.slice(4).join(" ")).sort();

let server: DnsServer;
let port = 0;
const table = source(services());
const metrics = createMetrics();

beforeAll(async () => {
  server = createDnsServer({
    table, listen: { host: "127.0.0.1", port: 0 }, tcp: true, clusterDomain: "cluster.local", ttl: 30,
    upstreams: ["127.0.0.1:9"], cacheSize: 100, metrics, log: createMemoryLogger(), forwardTimeoutMs: 200,
  });
  const info = await server.start();
  expect(info.udpPort).toBe(info.tcpPort);
  port = info.udpPort;
});
afterAll(() => server?.stop());

for (const transport of ["+notcp", "+tcp"]) {
  describe(`dig ${transport}`, () => {
    test("A and AAAA of a ClusterIP service", async () => {
      const a = await dig(port, transport, "web.default.svc.cluster.local", "A");
      expect(a.status).toBe("NOERROR");
      expect(a.flags).toContain("aa");
      expect(rdata(a.answer)).toEqual(["10.96.0.10"]);
      expect(a.answer[0]![1]).toBe("30");
      expect(rdata((await dig(port, transport, "web.default.svc.cluster.local", "AAAA")).answer)).toEqual(["fd00::10"]);
    });

    test("headless: every endpoint, and hostname records", async () => {
      expect(rdata((await dig(port, transport, "db.default.svc.cluster.local")).answer)).toEqual(["10.1.0.1", "10.1.0.2"]);
      expect(rdata((await dig(port, transport, "db-1.db.default.svc.cluster.local")).answer)).toEqual(["10.1.0.2"]);
    });

    test("SRV for a named port, with target addresses in the additional section", async () => {
      const r = await dig(port, transport, "_pg._tcp.db.default.svc.cluster.local", "SRV");
      expect(rdata(r.answer)).toEqual([
        "0 50 5432 db-0.db.default.svc.cluster.local.", "0 50 5432 db-1.db.default.svc.cluster.local.",
      ]);
      expect(r.additional.filter((x) => x[3] === "A").map((x) => x[4]).sort()).toEqual(["10.1.0.1", "10.1.0.2"]);
    });

    test("CNAME for ExternalName and PTR for ClusterIP and endpoint IPs", async () => {
      const c = await dig(port, transport, "ext.default.svc.cluster.local", "CNAME"); // A is chased: dns-forward test
      expect(c.answer.map((x) => x[3])).toEqual(["CNAME"]);
      expect(rdata(c.answer)).toEqual(["example.com."]);
      expect(rdata((await dig(port, transport, "-x", "10.96.0.10")).answer)).toEqual(["web.default.svc.cluster.local."]);
      expect(rdata((await dig(port, transport, "-x", "10.1.0.1")).answer)).toEqual(["db-0.db.default.svc.cluster.local."]);
      expect(rdata((await dig(port, transport, "-x", "fd00::10")).answer)).toEqual(["web.default.svc.cluster.local."]);
    });

    test("NXDOMAIN with SOA, NODATA with SOA", async () => {
      const nx = await dig(port, transport, "nope.default.svc.cluster.local");
      expect(nx.status).toBe("NXDOMAIN");
      expect(nx.authority.map((x) => x[3])).toEqual(["SOA"]);
      const nodata = await dig(port, transport, "web.default.svc.cluster.local", "TXT");
      expect(nodata.status).toBe("NOERROR");
      expect(nodata.answer).toEqual([]);
      expect(nodata.authority.map((x) => x[3])).toEqual(["SOA"]);
    });

    test("pod names (pods insecure): the IP is in the name", async () => {
      expect(rdata((await dig(port, transport, "10-1-2-3.default.pod.cluster.local")).answer)).toEqual(["10.1.2.3"]);
      expect(rdata((await dig(port, transport, "10-1-2-3.Any-NS.POD.cluster.local")).answer)).toEqual(["10.1.2.3"]);
      const v6 = await dig(port, transport, "10-1-2-3.default.pod.cluster.local", "AAAA");
      expect([v6.status, v6.answer.length, v6.authority.length]).toEqual(["NOERROR", 0, 1]);
      for (const bad of ["10-1-2-300", "10-1-2", "10-1-2-3-4", "a-1-2-3", "1--2-3"]) {
        expect((await dig(port, transport, `${bad}.default.pod.cluster.local`)).status).toBe("NXDOMAIN");
      }
    });

    test("mixed case is answered and echoed", async () => {
      const r = await dig(port, transport, "WeB.DeFault.SVC.Cluster.LOCAL");
      expect(r.raw).toContain(";WeB.DeFault.SVC.Cluster.LOCAL.");
      expect(r.answer[0]![0]).toBe("WeB.DeFault.SVC.Cluster.LOCAL.");
      expect(rdata(r.answer)).toEqual(["10.96.0.10"]);
    });
  });
}

describe("dig: search path and truncation", () => {
  test("a client's search path expands a short name into the full name", async () => {
    const r = await dig(port, "+search", "+domain=default.svc.cluster.local", "+ndots=5", "web");
    expect(r.answer[0]![0]).toBe("web.default.svc.cluster.local.");
    expect(rdata(r.answer)).toEqual(["10.96.0.10"]);
  });

  test("short forms without a search path are answered directly", async () => {
    expect(rdata((await dig(port, "web.default")).answer)).toEqual(["10.96.0.10"]);
    expect(rdata((await dig(port, "web.default.svc")).answer)).toEqual(["10.96.0.10"]);
  });

  test("a large headless service: TC over UDP, the full answer over TCP", async () => {
    const udp = await dig(port, "+notcp", "+ignore", "+bufsize=512", "big.default.svc.cluster.local");
    expect(udp.flags).toContain("tc");
    expect(udp.answer.length).toBeGreaterThan(0); // what fits, for clients that cannot use TCP
    expect(udp.answer.length).toBeLessThan(120);
    const tcp = await dig(port, "+tcp", "big.default.svc.cluster.local");
    expect(tcp.flags).not.toContain("tc");
    expect(tcp.answer).toHaveLength(120);
    const retried = await dig(port, "+bufsize=512", "big.default.svc.cluster.local"); // dig retries over TCP
    expect(retried.answer).toHaveLength(120);
    expect(retried.raw).toContain("Truncated, retrying in TCP mode");
  });

  test("zone transfers and CHAOS queries are refused", async () => {
    expect((await dig(port, "+tcp", "cluster.local", "AXFR")).raw).toMatch(/Transfer failed|REFUSED/);
    expect((await dig(port, "version.bind", "TXT", "CH")).status).toBe("REFUSED");
  });

  test("an unknown EDNS version gets BADVERS", async () => {
    const r = await dig(port, "+edns=1", "+noednsnegotiation", "web.default.svc.cluster.local");
    expect(r.status).toBe("BADVERS");
    expect(r.answer).toEqual([]);
  });

  test("a bigger EDNS buffer gets the whole answer over UDP", async () => {
    const r = await dig(port, "+notcp", "+bufsize=4096", "big.default.svc.cluster.local");
    expect(r.flags).not.toContain("tc");
    expect(r.answer).toHaveLength(120);
  });
});

describe("options", () => {
  test("a cluster domain that is not a domain name is refused at creation", () => {
    for (const clusterDomain of ["", ".", "a..b"]) {
      expect(() => createDnsServer({
        table, listen: { host: "127.0.0.1", port: 0 }, tcp: true, clusterDomain, ttl: 30, upstreams: [], cacheSize: 1,
        metrics: createMetrics(), log: createMemoryLogger(),
      })).toThrow(/clusterDomain/);
    }
  });
});

describe("IPv6 listen address", () => {
  test("a server on ::1 answers over UDP and TCP", async () => {
    const v6 = createDnsServer({
      table, listen: { host: "::1", port: 0 }, tcp: true, clusterDomain: "cluster.local", ttl: 30,
      upstreams: ["[::1]:9"], cacheSize: 10, metrics: createMetrics(), log: createMemoryLogger(),
    });
    try {
      const { udpPort } = await v6.start();
      for (const transport of ["+notcp", "+tcp"]) {
        const proc = Bun.spawn(["dig", "@::1", "-p", String(udpPort), "+short", "+tries=1", "+time=2", transport,
          "web.default.svc.cluster.local"], { stdout: "pipe" });
        expect((await new Response(proc.stdout).text()).trim()).toBe("10.96.0.10");
      }
    } finally {
      v6.stop();
    }
  });
});

describe("TCP framing", () => {
  test("pipelined queries in one segment and a query split across segments are all answered", async () => {
    const frame = (id: number, name: string) => {
      const body = packet.encode({ id, flags: packet.RECURSION_DESIRED, questions: [{ name, type: "A" }] });
      const out = Buffer.alloc(body.length + 2);
      out.writeUInt16BE(body.length, 0);
      body.copy(out, 2);
      return out;
    };
    let got = Buffer.alloc(0);
    const replies: packet.DecodedPacket[] = [];
    const done = Promise.withResolvers<void>();
    const sock = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data(_s, chunk) {
      got = Buffer.concat([got, chunk]);
      while (got.length >= 2 && got.length >= got.readUInt16BE(0) + 2) {
        replies.push(packet.decode(got.subarray(2, got.readUInt16BE(0) + 2)));
        got = got.subarray(got.readUInt16BE(0) + 2);
      }
      if (replies.length === 3) done.resolve();
    } } });
    const third = frame(3, "db.default.svc.cluster.local");
    sock.write(Buffer.concat([frame(1, "web.default.svc.cluster.local"), frame(2, "nope.default.svc.cluster.local"), third.subarray(0, 5)]));
    await Bun.sleep(50);
    sock.write(third.subarray(5));
    await Promise.race([done.promise, Bun.sleep(3000)]);
    sock.end();
    expect(replies.map((r) => r.id)).toEqual([1, 2, 3]);
    expect((replies[0]!.answers![0] as { data: string }).data).toBe("10.96.0.10");
    expect((replies[1] as { rcode?: string }).rcode).toBe("NXDOMAIN");
    expect(replies[2]!.answers).toHaveLength(2);
  });
});

describe("table changes", () => {
  test("a published table is answered at once", async () => {
    expect((await dig(port, "new.default.svc.cluster.local")).status).toBe("NXDOMAIN");
    table.publish(services([svc({ name: "new", clusterIPs: ["10.96.7.7"] })]));
    expect(rdata((await dig(port, "new.default.svc.cluster.local")).answer)).toEqual(["10.96.7.7"]);
    table.publish(services());
    expect((await dig(port, "new.default.svc.cluster.local")).status).toBe("NXDOMAIN");
    expect(server.zone().version).toBe(3);
  });

  test("counters saw local answers and truncations, and no handler errors", () => {
    const snap = metrics.snapshot();
    expect(snap['dns_replies_total{kind="local"}']).toBeGreaterThan(20);
    expect(snap['dns_replies_total{kind="truncated"}']).toBeGreaterThanOrEqual(2);
    expect(snap["dns_handler_errors_total"]).toBe(0);
  });

  test("responses are counted by rcode and qtype, each with one duration observation", () => {
    const snap = metrics.snapshot();
    expect(snap['dns_requests_total{proto="tcp"}']).toBeGreaterThanOrEqual(3);
    expect(snap['dns_requests_total{proto="udp"}']).toBeGreaterThan(20);
    expect(snap['dns_responses_total{qtype="A",rcode="NOERROR"}']).toBeGreaterThan(0);
    expect(snap['dns_responses_total{qtype="A",rcode="NXDOMAIN"}']).toBeGreaterThanOrEqual(3);
    expect(snap['dns_request_duration_seconds_count{source="local"}']).toBeGreaterThanOrEqual(snap['dns_replies_total{kind="local"}']!);
    expect(metrics.sum("dns_responses_total")).toBe(metrics.sum("dns_request_duration_seconds"));
    expect(snap['dns_request_duration_seconds_sum{source="local"}']).toBeGreaterThan(0);
  });
});
