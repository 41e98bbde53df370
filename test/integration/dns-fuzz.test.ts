// Fuzz: 100,000 random and mutated packets into the handler in-process (every reply checked),
// then 100,000 over real UDP and a few thousand over TCP; afterwards the server must still answer
// dig correctly and must not have thrown once.
import { afterAll, beforeAll, expect, test } from "bun:test";
import * as packet from "dns-packet";
import { deepFreeze, type RouteTable } from "../../src/control/index.ts";
import { DnsCore } from "../../src/dns/core.ts";
import { createDnsServer, type DnsServer } from "../../src/dns/index.ts";
import { compileZone } from "../../src/dns/zone.ts";
import { UpstreamIO } from "../../src/dns/upstream.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { rng } from "../support/rng.ts";

const PACKETS = 100_000;

const table: RouteTable = deepFreeze({ version: 1, compiledAt: 0, ports: [], byKey: {}, services: [
  { namespace: "default", name: "web", type: "ClusterIP", clusterIPs: ["10.96.0.10"], externalName: "",
    ports: [{ name: "http", port: 80, protocol: "TCP" }], endpoints: [] },
  { namespace: "default", name: "db", type: "Headless", clusterIPs: [], externalName: "", ports: [],
    endpoints: Array.from({ length: 60 }, (_, i) => ({ ip: `10.1.0.${i + 1}`, port: 1, node: "", ready: true, hostname: "", zone: "" })) },
] });

const seeds = [
  ["web.default.svc.cluster.local", "A"], ["db.default.svc.cluster.local", "A"], ["nope.cluster.local", "AAAA"],
  ["_http._tcp.web.default.svc.cluster.local", "SRV"], ["10.0.96.10.in-addr.arpa", "PTR"], ["www.example", "A"],
].flatMap(([name, type]) => [false, true].map((edns) => new Uint8Array(packet.encode({
  id: 1, flags: packet.RECURSION_DESIRED, questions: [{ name: name!, type: type as packet.RecordType }],
  additionals: edns ? [{ type: "OPT", name: ".", udpPayloadSize: 4096 } as packet.Answer] : [],
}))));

function makePacket(r: (n: number) => number): Uint8Array {
  const kind = r(10);
  if (kind < 3) {
    const out = new Uint8Array(r(600));
    for (let i = 0; i < out.length; i++) out[i] = r(256);
    return out;
  }
  let p: Uint8Array = seeds[r(seeds.length)]!.slice();
  const flips = 1 + r(8);
  for (let i = 0; i < flips && p.length > 0; i++) {
    const at = r(p.length);
    switch (r(5)) {
      case 0: p[at] = r(256); break;
      case 1: p[at] = 0xc0; if (at + 1 < p.length) p[at + 1] = r(p.length); break; // pointer, maybe a loop
      case 2: p[at] = 63; break; // a label length running past the end
      case 3: p = p.slice(0, at); break;
      default: { const q = new Uint8Array(p.length + 1 + r(40)); q.set(p); for (let j = p.length; j < q.length; j++) q[j] = r(256); p = q; }
    }
  }
  if (p.length >= 12 && r(4) === 0) p[4 + 2 * r(4) + 1] = r(4); // QDCOUNT/ANCOUNT/NSCOUNT/ARCOUNT
  if (p.length >= 3 && r(8) === 0) p[2] = r(256); // opcode, QR, flags
  return p;
}

let server: DnsServer;
let port = 0;
const metrics = createMetrics();
let upstream: Bun.udp.Socket<"buffer">;

beforeAll(async () => {
  // Upstream: a hostile one. It keeps the ID and question (so the reply is accepted as ours) and
  // fills the rest with garbage: random section counts, rcodes and trailing bytes, so the
  // forwarder's reply walker and cache see malformed records, compression loops and short data.
  const ur = rng(0xf00d);
  upstream = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: {
    data(s, buf, p, addr) {
      let end = 12;
      while (end < buf.length && buf[end] !== 0) end += buf[end]! + 1;
      end += 5; // zero byte, type, class
      if (ur(3) === 0) {
        // A well-formed answer (one A record, random TTL), so the cache fills too.
        const ok = new Uint8Array(end + 16);
        ok.set(buf.subarray(0, Math.min(end, buf.length)));
        ok.set([0xc0, 12, 0, 1, 0, 1, 0, 0, ur(256), ur(256), 0, 4, 10, 9, 8, 7], end);
        ok[2] = 0x80 | (buf[2]! & 1);
        ok[3] = 0x80;
        ok.set([0, 1, 0, 1, 0, 0, 0, 0], 4);
        return void s.send(ok, p, addr);
      }
      const reply = new Uint8Array(end + ur(300));
      reply.set(buf.subarray(0, Math.min(end, buf.length)));
      for (let i = end; i < reply.length; i++) reply[i] = ur(4) === 0 ? 0xc0 : ur(256);
      reply[2] = 0x80 | (buf[2]! & 1);
      reply[3] = 0x80 | ur(6);
      for (let i = 6; i < 12; i++) reply[i] = ur(3) === 0 ? ur(256) : ur(3);
      s.send(reply, p, addr);
    },
  } });
  server = createDnsServer({
    table: { current: () => table, subscribe: () => () => {} }, listen: { host: "127.0.0.1", port: 0 }, tcp: true,
    clusterDomain: "cluster.local", ttl: 30, upstreams: [`127.0.0.1:${upstream.port}`], cacheSize: 1000,
    metrics, log: createMemoryLogger(), forwardTimeoutMs: 500,
  });
  port = (await server.start()).udpPort;
});
afterAll(() => {
  server?.stop();
  upstream?.close();
});

test("the handler answers 100,000 fuzzed packets without throwing, every reply well-formed", () => {
  const m = createMetrics();
  const delivered: number[] = [];
  const core = new DnsCore({
    zone: compileZone(table, { domain: "cluster.local", ttl: 30 }), upstreams: [{ host: "127.0.0.1", port: 9 }],
    clusterUpstreams: null, cacheSize: 100, io: new UpstreamIO({ stray: m.counter("s", ""), errors: m.counter("e", "") }),
    metrics: m, log: createMemoryLogger(), now: () => 0, deliver: (_w, _b, len) => void delivered.push(len),
    timeoutMs: 100, maxPending: 64, maxCacheTtlS: 3600,
  });
  const r = rng(0xdecaf);
  const out = new Uint8Array(70000);
  let replies = 0;
  for (let i = 0; i < PACKETS; i++) {
    const p = makePacket(r);
    const n = core.handle(p, p.length, out, i % 7 === 0 ? {} : null, 1234, "127.0.0.1");
    if (n === 0) continue;
    replies++;
    expect(n).toBeGreaterThanOrEqual(12);
    if (out[0] !== p[0] || out[1] !== p[1] || (out[2]! & 0x80) === 0) throw new Error(`bad reply header for packet ${i}`);
  }
  const snap = m.snapshot();
  expect(replies).toBeGreaterThan(PACKETS / 2);
  expect(snap['dns_malformed_total{action="formerr"}']).toBeGreaterThan(1000);
  expect(snap['dns_malformed_total{action="dropped"}']).toBeGreaterThan(100);
  expect(snap['dns_malformed_total{action="notimp"}']).toBeGreaterThan(10);
  expect(snap['dns_replies_total{kind="local"}']).toBeGreaterThan(1000);
  expect(delivered.length).toBeGreaterThan(0); // forwarded ones ended in SERVFAIL (no upstream socket)
});

test("after 100,000 fuzzed UDP packets and fuzzed TCP streams the server still answers correctly", async () => {
  const r = rng(0xbeef);
  const client = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0, socket: { data() {}, error() {} } });
  try {
    const started = Date.now();
    for (let sent = 0; sent < PACKETS && Date.now() - started < 60_000;) {
      const batch: (Uint8Array | number | string)[] = [];
      for (let i = 0; i < 200; i++, sent++) batch.push(makePacket(r), port, "127.0.0.1");
      client.sendMany(batch);
      await Bun.sleep(1); // let the server drain its socket: we want packets handled, not dropped
    }
  } finally {
    client.close();
  }
  for (let c = 0; c < 20; c++) {
    const sock = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, error() {} } });
    for (let i = 0; i < 100; i++) {
      const p = makePacket(r);
      const framed = new Uint8Array(p.length + 2);
      const len = r(5) === 0 ? r(65536) : p.length; // sometimes a lying length prefix
      framed[0] = len >>> 8;
      framed[1] = len & 0xff;
      framed.set(p, 2);
      sock.write(framed);
    }
    sock.end();
  }
  await Bun.sleep(200);
  const dig = async (...args: string[]) => {
    const proc = Bun.spawn(["dig", "@127.0.0.1", "-p", String(port), "+short", "+tries=2", "+time=2", ...args], { stdout: "pipe" });
    const text = await new Response(proc.stdout).text();
    await proc.exited;
    return text.trim();
  };
  expect(await dig("web.default.svc.cluster.local")).toBe("10.96.0.10");
  expect(await dig("+tcp", "WEB.default.svc.cluster.local")).toBe("10.96.0.10");
  expect((await dig("db.default.svc.cluster.local")).split("\n")).toHaveLength(60);
  const snap = metrics.snapshot();
  expect(metrics.sum("dns_requests_total")).toBeGreaterThan(PACKETS * 0.5);
  expect(snap['dns_malformed_total{action="formerr"}']).toBeGreaterThan(1000);
  expect(snap["dns_handler_errors_total"]).toBe(0);
  expect(snap['dns_replies_total{kind="cache"}']).toBeGreaterThan(0); // hostile upstream's good replies
  expect(snap['dns_forward_total{event="servfail"}']).toBeGreaterThan(0); // and its garbage
  expect(snap["dns_cache_entries"]).toBeLessThanOrEqual(1000); // cacheSize
}, 90_000);
