// Forwarding, caching and coalescing against a tiny upstream DNS server started here (dns-packet
// over Bun.udpSocket and Bun.listen on another loopback port), queried with the real `dig`.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import * as packet from "dns-packet";
import { deepFreeze, type RouteTable } from "../../src/control/index.ts";
import { createDnsServer, type DnsOptions, type DnsServer } from "../../src/dns/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";

interface Upstream {
  port: number;
  udpSeen: string[];
  tcpSeen: string[];
  /** Reply after this many ms (lets concurrent questions overlap). */
  delayMs: number;
  stop(): void;
}

/** Answers A for *.example: 60 s TTL; "nx.example" NXDOMAIN (SOA minimum 40); "big.example" TC over UDP. */
async function startUpstream(opts: { silent?: boolean; host?: string; port?: number } = {}): Promise<Upstream> {
  const answer = (query: Buffer, tcp: boolean): Buffer => {
    const q = packet.decode(query);
    const name = q.questions![0]!.name.toLowerCase();
    const base = { id: q.id, type: "response" as const, questions: q.questions };
    if (name === "nx.example") {
      return packet.encode({ ...base, flags: packet.RECURSION_AVAILABLE | 3, authorities: [{
        name: "example", type: "SOA", ttl: 300,
        data: { mname: "ns.example", rname: "h.example", serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 40 },
      }] });
    }
    const count = name === "big.example" ? 100 : 1;
    if (name === "big.example" && !tcp) return packet.encode({ ...base, flags: packet.TRUNCATED_RESPONSE });
    const answers = Array.from({ length: count }, (_, i) => ({ name: q.questions![0]!.name, type: "A" as const, ttl: 60, data: `192.0.2.${i + 1}` }));
    return packet.encode({ ...base, flags: packet.RECURSION_AVAILABLE, answers });
  };
  const up: Upstream = { port: 0, udpSeen: [], tcpSeen: [], delayMs: 0, stop: () => {} };
  const hostname = opts.host ?? "127.0.0.1";
  const bind = async () => {
    const udp = await Bun.udpSocket({
      hostname, port: opts.port ?? 0,
      socket: {
        data(sock, buf, port, addr) {
          const name = packet.decode(buf).questions![0]!.name;
          up.udpSeen.push(name);
          if (opts.silent) return;
          const reply = answer(buf, false);
          setTimeout(() => sock.send(reply, port, addr), up.delayMs);
        },
      },
    });
    const listen = () => Bun.listen({
      hostname, port: udp.port,
      socket: {
        data(s, buf) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          up.tcpSeen.push(packet.decode(msg).questions![0]!.name);
          const reply = answer(msg, true);
          const framed = Buffer.alloc(reply.length + 2);
          framed.writeUInt16BE(reply.length, 0);
          reply.copy(framed, 2);
          s.write(framed);
        },
      },
    });
    try {
      return { udp, tcp: listen() };
    } catch (err) {
      udp.close();
      throw err;
    }
  };
  // Port 0 gives a free UDP port; TCP on the same number may be taken (busy machine): retry.
  let bound: Awaited<ReturnType<typeof bind>> | null = null;
  for (let attempt = 0; bound === null; attempt++) {
    try {
      bound = await bind();
    } catch (err) {
      if (attempt >= 10 || opts.port) throw err;
    }
  }
  const { udp, tcp } = bound;
  up.port = udp.port;
  up.stop = () => {
    udp.close();
    tcp.stop(true);
  };
  return up;
}

async function dig(port: number, ...args: string[]) {
  const proc = Bun.spawn(["dig", "@127.0.0.1", "-p", String(port), "+tries=1", "+time=3", "+nocookie", ...args], { stdout: "pipe" });
  const raw = await new Response(proc.stdout).text();
  await proc.exited;
  const i = raw.indexOf(";; ANSWER SECTION:\n");
  const answer = i < 0 ? [] : raw.slice(i).split("\n").slice(1).filter((l, k, all) => all.slice(0, k + 1).every((x) => x.trim() !== "")).map((l) => l.split(/\s+/));
  return { status: /status: (\w+)/.exec(raw)?.[1] ?? "NONE", flags: /;; flags: ([^;]*);/.exec(raw)?.[1] ?? "", answer, raw };
}

const emptyTable: RouteTable = deepFreeze({ version: 1, compiledAt: 0, ports: [], byKey: {}, services: [
  { namespace: "default", name: "web", type: "ClusterIP", clusterIPs: ["10.96.0.10"], externalName: "", ports: [], endpoints: [] },
  { namespace: "default", name: "ext", type: "ExternalName", clusterIPs: [], externalName: "target.example", ports: [], endpoints: [] },
] });
const clock = { t: 1_000_000, now() { return this.t; } };
const running: DnsServer[] = [];

async function start(upstreams: string[], extra: Partial<DnsOptions> = {}, table = emptyTable): Promise<{ port: number; metrics: MetricsRegistry }> {
  const metrics = createMetrics();
  const server = createDnsServer({
    table: { current: () => table, subscribe: () => () => {} }, listen: { host: "127.0.0.1", port: 0 }, tcp: true,
    clusterDomain: "cluster.local", ttl: 30, upstreams, cacheSize: 1000, metrics, log: createMemoryLogger(),
    clock, forwardTimeoutMs: 1000, maxCacheTtl: 3600, ...extra,
  });
  running.push(server);
  return { port: (await server.start()).udpPort, metrics };
}

let up: Upstream;
beforeAll(async () => {
  up = await startUpstream();
});
afterEach(() => {
  for (const s of running.splice(0)) s.stop();
  up.udpSeen.length = 0;
  up.tcpSeen.length = 0;
  up.delayMs = 0;
});
afterAll(() => up.stop());

describe("forwarding", () => {
  test("names outside the cluster are forwarded over UDP, and over TCP when the client used TCP", async () => {
    const { port } = await start([`127.0.0.1:${up.port}`]);
    const r = await dig(port, "www.example");
    expect(r.status).toBe("NOERROR");
    expect(r.answer.map((x) => x[4])).toEqual(["192.0.2.1"]);
    expect(up.udpSeen).toEqual(["www.example"]);
    const t = await dig(port, "+tcp", "Other.Example");
    expect(t.raw).toContain(";Other.Example."); // the client's question case comes back
    expect(t.answer.map((x) => x[4])).toEqual(["192.0.2.1"]);
    expect(up.tcpSeen).toEqual(["other.example"]);
  });

  test("a truncated upstream reply is fetched again over TCP and the client gets all of it", async () => {
    const { port } = await start([`127.0.0.1:${up.port}`]);
    const r = await dig(port, "+tcp", "big.example");
    expect(r.answer).toHaveLength(100);
    const u = await dig(port, "+bufsize=1232", "+notcp", "+ignore", "big.example"); // from the cache now
    expect(u.flags).toContain("tc");
    expect(up.udpSeen.length + up.tcpSeen.length).toBe(1);
    const { port: port2 } = await start([`127.0.0.1:${up.port}`]);
    const viaUdp = await dig(port2, "+bufsize=4096", "big.example");
    expect(viaUdp.answer).toHaveLength(100);
    expect(up.udpSeen).toEqual(["big.example"]);
    expect(up.tcpSeen).toEqual(["big.example", "big.example"]);
  });

  test("IPv6: an upstream on ::1 is asked over the IPv6 socket", async () => {
    const v6 = await startUpstream({ host: "::1" });
    try {
      const { port } = await start([`[::1]:${v6.port}`]);
      expect((await dig(port, "six.example")).answer.map((x) => x[4])).toEqual(["192.0.2.1"]);
      expect(v6.udpSeen).toEqual(["six.example"]);
    } finally {
      v6.stop();
    }
  });

  test("an upstream that does not answer is skipped for the next one", async () => {
    const silent = await startUpstream({ silent: true });
    try {
      const { port, metrics } = await start([`127.0.0.1:${silent.port}`, `127.0.0.1:${up.port}`]);
      const r = await dig(port, "retry.example");
      expect(r.answer.map((x) => x[4])).toEqual(["192.0.2.1"]);
      expect(silent.udpSeen).toEqual(["retry.example"]);
      expect(up.udpSeen).toEqual(["retry.example"]);
      expect(metrics.snapshot()['dns_forward_total{event="timeout"}']).toBe(1);
      // The answer waited out one upstream timeout (1 s): its duration says so.
      expect(metrics.snapshot()['dns_request_duration_seconds_count{source="upstream"}']).toBe(1);
      expect(metrics.snapshot()['dns_request_duration_seconds_sum{source="upstream"}']).toBeGreaterThanOrEqual(0.9);
      await dig(port, "next.example"); // the upstream that answered is asked first from now on
      expect(silent.udpSeen).toEqual(["retry.example"]);
      expect(up.udpSeen).toEqual(["retry.example", "next.example"]);
    } finally {
      silent.stop();
    }
  });

  test("no upstream answering: SERVFAIL after the attempts", async () => {
    const silent = await startUpstream({ silent: true });
    try {
      const { port, metrics } = await start([`127.0.0.1:${silent.port}`]);
      expect((await dig(port, "gone.example")).status).toBe("SERVFAIL");
      expect(metrics.snapshot()['dns_responses_total{qtype="A",rcode="SERVFAIL"}']).toBe(1);
      expect(silent.udpSeen).toEqual(["gone.example", "gone.example"]);
    } finally {
      silent.stop();
    }
  });

  test("cacheDNS mode forwards every question, cluster names included, to the cluster DNS", async () => {
    const cluster = await startUpstream();
    try {
      const { port } = await start([`127.0.0.1:${up.port}`], {
        cacheDNS: { enable: true, upstreamServers: [`127.0.0.1:${cluster.port}`] },
      });
      const r = await dig(port, "web.default.svc.cluster.local");
      expect(r.answer.map((x) => x[4])).toEqual(["192.0.2.1"]); // the cluster DNS's answer, not 10.96.0.10
      expect(cluster.udpSeen).toEqual(["web.default.svc.cluster.local"]);
      await dig(port, "www.example");
      expect(cluster.udpSeen).toEqual(["web.default.svc.cluster.local", "www.example"]);
      expect(up.udpSeen).toEqual([]); // as in EdgeMesh's Corefile: one "forward ." to the cluster DNS
    } finally {
      cluster.stop();
    }
  });
});

describe("upstreams from resolv.conf", () => {
  test("nameservers are used in order, skipping our own listen address", async () => {
    // Port 53 on loopback addresses of our own (we are root): resolv.conf cannot name a port.
    const upstream = await startUpstream({ host: "127.53.0.11", port: 53 });
    const metrics = createMetrics();
    const server = createDnsServer({
      table: { current: () => emptyTable, subscribe: () => () => {} }, listen: { host: "127.53.0.12", port: 53 }, tcp: true,
      clusterDomain: "cluster.local", ttl: 30, upstreams: [], cacheSize: 10, metrics, log: createMemoryLogger(), clock,
      readResolvConf: () => "search default.svc.cluster.local\nnameserver 127.53.0.12\nnameserver 127.53.0.11\n",
    });
    running.push(server);
    try {
      await server.start();
      const proc = Bun.spawn(["dig", "@127.53.0.12", "+short", "+tries=1", "+time=3", "conf.example"], { stdout: "pipe" });
      expect((await new Response(proc.stdout).text()).trim()).toBe("192.0.2.1");
      expect(upstream.udpSeen).toEqual(["conf.example"]);
    } finally {
      upstream.stop();
    }
  });
});

describe("cacheDNS details", () => {
  test("autoDetect forwards cluster names to kube-system/kube-dns's ClusterIP, port 53", async () => {
    // A loopback address of our own for the "cluster DNS": 127/8 is all local, and we are root.
    const kubeDns = await startUpstream({ host: "127.53.0.10", port: 53 });
    try {
      const table: RouteTable = deepFreeze({ ...emptyTable, services: [...emptyTable.services,
        { namespace: "kube-system", name: "kube-dns", type: "ClusterIP", clusterIPs: ["127.53.0.10"], externalName: "",
          ports: [{ name: "dns", port: 53, protocol: "UDP" }], endpoints: [] }] });
      const { port } = await start([`127.0.0.1:${up.port}`], { cacheDNS: { enable: true, autoDetect: true, upstreamServers: [] } }, table);
      expect((await dig(port, "web.default.svc.cluster.local")).answer.map((x) => x[4])).toEqual(["192.0.2.1"]);
      expect(kubeDns.udpSeen).toEqual(["web.default.svc.cluster.local"]);
    } finally {
      kubeDns.stop();
    }
  });

  test("by default forwarded answers are cached for at most 30 s, and say so (EdgeMesh: cache 30)", async () => {
    const { port } = await start([`127.0.0.1:${up.port}`], { maxCacheTtl: undefined });
    expect((await dig(port, "capped.example")).answer[0]![1]).toBe("30"); // upstream said 60
    clock.t += 29_000;
    expect((await dig(port, "capped.example")).answer[0]![1]).toBe("1");
    clock.t += 1_000;
    await dig(port, "capped.example");
    expect(up.udpSeen).toEqual(["capped.example", "capped.example"]);
  });

  test("cacheTTL caps how long forwarded answers are cached", async () => {
    const { port } = await start([`127.0.0.1:${up.port}`], { cacheDNS: { enable: true, upstreamServers: [`127.0.0.1:${up.port}`], cacheTTL: 5 } });
    await dig(port, "short.example");
    clock.t += 4_000;
    await dig(port, "short.example");
    expect(up.udpSeen).toEqual(["short.example"]);
    clock.t += 1_000;
    await dig(port, "short.example");
    expect(up.udpSeen).toEqual(["short.example", "short.example"]);
  });
});

describe("ExternalName", () => {
  test("A questions get the CNAME and the target's addresses, resolved through the forwarder and cache", async () => {
    const { port } = await start([`127.0.0.1:${up.port}`]);
    for (const transport of ["+notcp", "+tcp"]) {
      const r = await dig(port, transport, "Ext.Default.svc.cluster.local");
      expect(r.status).toBe("NOERROR");
      expect(r.answer.map((x) => [x[0], x[3], x[4]])).toEqual([
        ["Ext.Default.svc.cluster.local.", "CNAME", "target.example."],
        ["target.example.", "A", "192.0.2.1"],
      ]);
    }
    expect(up.udpSeen).toEqual(["target.example"]); // the second came from the cache
    const c = await dig(port, "ext.default.svc.cluster.local", "CNAME");
    expect(c.answer.map((x) => x[3])).toEqual(["CNAME"]);
  });
});

describe("caching", () => {
  test("a cached answer is served with aged TTLs after the upstream stops, until its TTL runs out", async () => {
    const own = await startUpstream();
    const { port } = await start([`127.0.0.1:${own.port}`]);
    expect((await dig(port, "cached.example")).answer[0]![1]).toBe("60");
    own.stop();
    clock.t += 25_000;
    const hit = await dig(port, "cached.example");
    expect(hit.answer.map((x) => x[4])).toEqual(["192.0.2.1"]);
    expect(hit.answer[0]![1]).toBe("35");
    clock.t += 35_000;
    expect((await dig(port, "cached.example")).status).toBe("SERVFAIL");
    expect(own.udpSeen).toEqual(["cached.example"]);
  });

  test("NXDOMAIN is cached for the SOA minimum", async () => {
    const { port } = await start([`127.0.0.1:${up.port}`]);
    expect((await dig(port, "nx.example")).status).toBe("NXDOMAIN");
    clock.t += 39_000;
    expect((await dig(port, "nx.example")).status).toBe("NXDOMAIN");
    expect(up.udpSeen).toEqual(["nx.example"]);
    clock.t += 1_000;
    expect((await dig(port, "nx.example")).status).toBe("NXDOMAIN");
    expect(up.udpSeen).toEqual(["nx.example", "nx.example"]);
  });

  test("identical concurrent questions are coalesced into one upstream query", async () => {
    const { port, metrics } = await start([`127.0.0.1:${up.port}`], { forwardTimeoutMs: 2500 });
    up.delayMs = 1000;
    const results = await Promise.all(Array.from({ length: 12 }, () => dig(port, "same.example")));
    for (const r of results) expect(r.answer.map((x) => x[4])).toEqual(["192.0.2.1"]);
    expect(up.udpSeen).toEqual(["same.example"]);
    expect(metrics.snapshot()['dns_forward_total{event="coalesced"}']).toBe(11);
  });
});
