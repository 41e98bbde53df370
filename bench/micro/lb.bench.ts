// Endpoint pick per LB policy, each against the cheapest thing that does the same job, measured
// in the same process: the ratio (reference ns / our ns) is what the gate holds, so a faster or
// slower machine does not move it. 10 endpoints per service port, 1024 distinct client IPs.

import { do_not_optimize } from "mitata";
import { deepFreeze, type LbPolicy, type ServicePort } from "../../src/control/index.ts";
import { createBalancer, headEnd, headerValue } from "../../src/hotpath/index.ts";
import { emit, jsonMode, nano, nsRatio, runScenarios } from "./harness.ts";

const ENDPOINTS = 10;
const CLIENTS = 1024;
const NONE: readonly number[] = [];

function servicePort(name: string, policy: LbPolicy, clientIP = false): ServicePort {
  const endpoints = [];
  for (let i = 0; i < ENDPOINTS; i++) {
    endpoints.push({ ip: `172.16.0.${i + 1}`, port: 8080, node: `node-${i}`, ready: true, hostname: "", zone: "" });
  }
  return deepFreeze({
    key: `bench/${name}:80/TCP`,
    namespace: "bench",
    name,
    portName: "http",
    port: 80,
    protocol: "TCP",
    clusterIPs: ["10.96.0.10"],
    nodePort: 0,
    externalIPs: [],
    policy,
    affinity: { clientIP, timeoutSeconds: 10_800 },
    endpoints,
  });
}

const rr = servicePort("rr", { kind: "ROUND_ROBIN" });
const random = servicePort("random", { kind: "RANDOM" });
const srcHash = servicePort("srchash", { kind: "CONSISTENT_HASH_SOURCE_IP" });
const hdrHash = servicePort("hdrhash", { kind: "CONSISTENT_HASH_HEADER", header: "x-user" });
const affinity = servicePort("affinity", { kind: "ROUND_ROBIN" }, true);

const balancer = createBalancer({ consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 } });
const clients: string[] = [];
for (let i = 0; i < CLIENTS; i++) clients.push(`192.168.${i >> 8}.${i & 255}`);
const heads: Uint8Array[] = clients.map((_, i) =>
  new TextEncoder().encode(`GET /api/items?page=2 HTTP/1.1\r\nHost: web.bench.svc\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nX-User: user-${i}\r\n\r\n`),
);
const addresses = rr.endpoints.map((e) => `${e.ip}:${e.port}`);

let i = 0;
const next = () => (i = (i + 1) & (CLIENTS - 1));

// References: the bare operation a policy cannot avoid; random and affinity are held against the
// round-robin pick below (their bare operations ran at one of two speeds per process).
nano("ref: array index modulo", () => do_not_optimize(addresses[next() % ENDPOINTS]));
nano("ref: xxHash64 of client ip", () => do_not_optimize(Bun.hash.xxHash64(clients[next()]!) % 10n));

nano("round robin pick", () => do_not_optimize(balancer.pick(rr, clients[next()]!, "", NONE)));
nano("random pick", () => do_not_optimize(balancer.pick(random, clients[next()]!, "", NONE)));
nano("consistent hash source ip pick", () => do_not_optimize(balancer.pick(srcHash, clients[next()]!, "", NONE)));
nano("header hash pick (parse head + pick)", () => {
  const head = heads[next()]!;
  const end = headEnd(head, head.length);
  do_not_optimize(balancer.pick(hdrHash, clients[i]!, headerValue(head, end, "x-user"), NONE));
});
nano("affinity pick (ClientIP)", () => do_not_optimize(balancer.pick(affinity, clients[next()]!, "", NONE)));

const stats = await runScenarios();
emit([
  nsRatio("lb.round_robin", stats, "round robin pick", "ref: array index modulo"),
  // Random's reference is the round-robin pick too: a bare Math.random index (2.7-4 ns) ran in one
  // of two speeds per process, the ratio jumped 0.056 <-> 0.087 while the pick held 45-49 ns.
  nsRatio("lb.random", stats, "random pick", "round robin pick",
    "reference: the round-robin pick (same call, same endpoints): what drawing at random adds"),
  nsRatio("lb.consistent_hash_source_ip", stats, "consistent hash source ip pick", "ref: xxHash64 of client ip"),
  nsRatio("lb.header_hash", stats, "header hash pick (parse head + pick)", "ref: xxHash64 of client ip",
    "includes finding the request head end and reading the header, as the proxy does once per connection"),
  // Affinity is a round-robin pick behind a per-client table, so the plain round-robin pick (same
  // process, same clients) is its reference: the ratio is what the sticky table costs on top.
  // A bare Map.get was the reference until 2026-12-05: in a process of its own it ran at either
  // ~4.5 or ~9.5 ns (JIT luck, one mode per process), so the ratio jumped 0.07 <-> 0.17 while
  // the pick held 54-58 ns, and the gate failed on a number that had not moved.
  nsRatio("lb.affinity", stats, "affinity pick (ClientIP)", "round robin pick",
    "reference: the round-robin pick the affinity table sits on (what the table adds)"),
]);
if (!jsonMode) process.exit(0);
