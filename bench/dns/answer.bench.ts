// Micro: answering one DNS query in-process (parse + template lookup + reply assembly), on a
// 10k-service zone, against the naive way (dns-packet decode, Map lookup, dns-packet encode)
// measured in the same process. Also compiling the zone for 10k services.
//   bun bench/dns/answer.bench.ts [--json]
import * as packet from "dns-packet";
import { bench, do_not_optimize } from "mitata";
import { deepFreeze, type RouteTable, type ServiceRecord } from "../../src/control/index.ts";
import { prepareReply } from "../../src/dns/cache.ts";
import { DnsCore } from "../../src/dns/core.ts";
import { compileZone, createZoneCompiler } from "../../src/dns/zone.ts";
import { UpstreamIO } from "../../src/dns/upstream.ts";
import { mixHash, parseQuery, Query } from "../../src/dns/wire.ts";
import { createLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { emit, get, jsonMode, nsRatio, runScenarios } from "../micro/harness.ts";

const N = 10_000;
const services: ServiceRecord[] = Array.from({ length: N }, (_, i) => ({
  namespace: `ns-${i % 50}`, name: `svc-${i}`, type: "ClusterIP", clusterIPs: [`10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
  externalName: "", ports: [{ name: "http", port: 80, protocol: "TCP" }], endpoints: [],
}));
const table: RouteTable = deepFreeze({ version: 1, compiledAt: 0, ports: [], byKey: {}, services });
const zone = compileZone(table, { domain: "cluster.local", ttl: 30 });
const m = createMetrics();
const core = new DnsCore({
  zone, upstreams: [], clusterUpstreams: null, cacheSize: 10, metrics: m, log: createLogger({ level: "error" }),
  io: new UpstreamIO({ stray: m.counter("s", ""), errors: m.counter("e", "") }), now: Date.now, deliver: () => {},
  timeoutMs: 100, maxPending: 10, maxCacheTtlS: 3600,
});

const MASK = 1023;
const queries = Array.from({ length: MASK + 1 }, (_, k) => {
  const i = (k * 7919) % N;
  return new Uint8Array(packet.encode({ id: k, flags: packet.RECURSION_DESIRED,
    questions: [{ name: `svc-${i}.ns-${i % 50}.svc.cluster.local`, type: "A" }] }));
});
const naive = new Map(services.map((s) => [`${s.name}.${s.namespace}.svc.cluster.local`, s.clusterIPs[0]!]));
const out = new Uint8Array(8192);
let i = 0;

bench("ref: dns-packet decode + Map + encode", () => {
  const q = packet.decode(Buffer.from(queries[(i = (i + 1) & MASK)]!));
  const name = q.questions![0]!.name;
  const ip = naive.get(name.toLowerCase());
  do_not_optimize(packet.encode({ id: q.id, type: "response", flags: packet.AUTHORITATIVE_ANSWER, questions: q.questions,
    answers: ip ? [{ name, type: "A", ttl: 30, data: ip }] : [] }));
});
bench("dns answer (template)", () => {
  const q = queries[(i = (i + 1) & MASK)]!;
  do_not_optimize(core.handle(q, q.length, out, null, 1, "127.0.0.1"));
});
// A forwarded name already in the cache (what the "cached forward" dnsperf scenario measures).
const fwdQuery = new Uint8Array(packet.encode({ id: 7, flags: packet.RECURSION_DESIRED, questions: [{ name: "x.fwd.test", type: "A" }] }));
{
  const prepared = prepareReply(new Uint8Array(packet.encode({ id: 7, type: "response", flags: packet.RECURSION_AVAILABLE,
    questions: [{ name: "x.fwd.test", type: "A" }], answers: [{ name: "x.fwd.test", type: "A", ttl: 3600, data: "10.0.0.2" }] })))!;
  const q = new Query();
  parseQuery(fwdQuery, fwdQuery.length, q);
  core.cache.set(mixHash(mixHash(q.hash, q.qtype), q.qclass), { name: q.name.slice(0, q.nameLen), qtype: 1, qclass: 1,
    wire: prepared.wire, ttlOffsets: prepared.ttlOffsets, ttls: prepared.ttls, answerEnds: prepared.answerEnds, storedAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
}
bench("dns answer (cache hit)", () => do_not_optimize(core.handle(fwdQuery, fwdQuery.length, out, null, 1, "127.0.0.1")));
bench("compile zone 10k services", () => do_not_optimize(compileZone(table, { domain: "cluster.local", ttl: 30 })));
// A republish where one service changed: what a table publish costs while DNS is serving.
const compiler = createZoneCompiler({ domain: "cluster.local", ttl: 30 });
const tables = [1, 2].map((v) => deepFreeze({ ...table, version: v,
  services: services.map((s, k) => (k === 0 ? { ...s, clusterIPs: [`10.200.0.${v}`] } : s)) }) as RouteTable);
compiler.compile(tables[0]!);
let flip = 0;
bench("recompile zone 10k services (1 changed)", () => do_not_optimize(compiler.compile(tables[(flip ^= 1)]!)));

const stats = await runScenarios();
emit([
  nsRatio("dns.answer_template", stats, "dns answer (template)", "ref: dns-packet decode + Map + encode"),
  nsRatio("dns.answer_cache_hit", stats, "dns answer (cache hit)", "ref: dns-packet decode + Map + encode"),
  { name: "dns.compile_zone_10k_ms", unit: "ms", value: get(stats, "compile zone 10k services").avg / 1e6 },
  { name: "dns.recompile_zone_10k_ms", unit: "ms", value: get(stats, "recompile zone 10k services (1 changed)").avg / 1e6 },
]);
if (!jsonMode) process.exit(0);
