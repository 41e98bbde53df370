// Failure-path counters the e2e observability drive cannot provoke cheaply, each made to move
// here by the failure it counts (test/e2e/observability.test.ts names this file for them).

import { afterAll, expect, test } from "bun:test";
import { deepFreeze, type RouteTable } from "../../src/control/index.ts";
import { createDnsServer, type DnsOptions } from "../../src/dns/index.ts";
import { createTunnelDialer } from "../../src/hotpath/remote/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { stopAllTunnels, testTunnel } from "../support/tunnels.ts";
import { makeTable, runCleanups, startProxy, tableSource } from "./proxy-support.ts";

const cleanups: (() => void)[] = [];
afterAll(async () => {
  runCleanups(cleanups);
  await stopAllTunnels();
});

test("proxy_listen_failures_total: a service port that cannot be bound is counted", async () => {
  // 192.0.2.1 (TEST-NET-1) is on no interface of this machine: bind fails with EADDRNOTAVAIL.
  const h = startProxy([{ name: "web", endpoints: [{ port: 9 }] }], { bindHost: "192.0.2.1" });
  cleanups.push(() => h.proxy.stop());
  const snap = h.metrics.snapshot();
  expect(snap["proxy_listen_failures_total"]).toBe(1);
  expect(h.proxy.listeners().size).toBe(0);
});

test("tunnel_handshake_failures_total: a node's address now held by another peer fails the Noise handshake, counted and logged", async () => {
  const a = testTunnel("node-a");
  const b = testTunnel("node-b");
  const c = testTunnel("node-c");
  await Promise.all([a.tunnel.start(), b.tunnel.start(), c.tunnel.start()]);
  // a believes node-c lives at b's address (a stale address): Noise checks the peer's identity.
  await a.tunnel.addPeer("node-c", c.tunnel.peerId, b.tunnel.addrs().map((x) => x.replace(/\/p2p\/.*$/, "")));
  b.tunnel.handleProxy(() => true);
  await expect(a.tunnel.openProxyStream("node-c", { protocol: "tcp", ip: "10.0.0.1", port: 80 })).rejects.toThrow();
  expect(a.metrics.snapshot()["tunnel_handshake_failures_total"]).toBeGreaterThan(0);
  // The line names where the connection went and whom it expected (it once said remote=unknown:
  // under the PSK layer Noise sees a stream without an address).
  const line = a.log.lines.find((l) => l.includes("encrypted handshake failed"));
  const bAddr = b.tunnel.addrs()[0]!.replace(/\/p2p\/.*$/, "");
  expect(line).toContain(`remote=${bAddr}`);
  expect(line).toContain(`peer=${c.tunnel.peerId}`);
  expect(line).not.toContain("unknown");
  expect(b.metrics.snapshot()["tunnel_proxy_streams_accepted_total"] ?? 0).toBe(0);
});

test("tunnel_psk_mismatch_total: a PSK on one side only is counted on both sides, with the reason and the remote address", async () => {
  const withPsk = testTunnel("node-psk");
  const without = testTunnel("node-plain", { psk: undefined });
  await Promise.all([withPsk.tunnel.start(), without.tunnel.start()]);
  withPsk.tunnel.handleProxy(() => true);
  without.tunnel.handleProxy(() => true);
  const target = { protocol: "tcp" as const, ip: "10.0.0.1", port: 80 };
  const count = (t: typeof withPsk, reason: string) => t.metrics.snapshot()[`tunnel_psk_mismatch_total{reason="${reason}"}`] ?? 0;
  const waitFor = async (ok: () => boolean) => {
    for (const deadline = Date.now() + 5000; !ok() && Date.now() < deadline; ) await Bun.sleep(20);
  };
  // The node without a PSK sees the other's nonce where multistream-select belongs: as listener
  // (the PSK node dials) and as dialer (the PSK node answers). It used to count nothing.
  await withPsk.tunnel.addPeer("node-plain", without.tunnel.peerId, without.tunnel.addrs());
  await expect(withPsk.tunnel.openProxyStream("node-plain", target)).rejects.toThrow();
  await waitFor(() => count(without, "peer_with_psk") >= 1);
  const asListener = count(without, "peer_with_psk");
  expect(asListener).toBeGreaterThanOrEqual(1);
  await without.tunnel.addPeer("node-psk", withPsk.tunnel.peerId, withPsk.tunnel.addrs());
  await expect(without.tunnel.openProxyStream("node-psk", target)).rejects.toThrow();
  await waitFor(() => count(without, "peer_with_psk") > asListener && count(withPsk, "peer_without_psk") >= 1);
  expect(count(without, "peer_with_psk")).toBeGreaterThan(asListener);
  expect(count(without, "key_differs") + count(without, "peer_without_psk")).toBe(0);
  // The PSK node sees the plaintext header where the nonce belongs (the plain node's dial).
  expect(count(withPsk, "peer_without_psk")).toBeGreaterThanOrEqual(1);
  expect(count(withPsk, "key_differs")).toBe(0);
  const plainLine = without.log.lines.find((l) => l.includes("PSK mismatch"));
  expect(plainLine).toContain("the peer uses a pre-shared key and this node has none");
  expect(plainLine).toContain("reason=peer_with_psk");
  expect(plainLine).toMatch(/remote=\/ip4\/127\.0\.0\.1\/tcp\/\d+/);
  const pskLine = withPsk.log.lines.find((l) => l.includes("PSK mismatch"));
  expect(pskLine).toContain("the peer has no pre-shared key and this node has one");
  expect(pskLine).toMatch(/remote=\/ip4\/127\.0\.0\.1\/tcp\/\d+/);
  for (const t of [withPsk, without]) expect(t.metrics.snapshot()["tunnel_proxy_streams_accepted_total"] ?? 0).toBe(0);
});

test("a node without a PSK still talks to another without one: the first-bytes check passes the connection through", async () => {
  const a = testTunnel("plain-a", { psk: undefined });
  const b = testTunnel("plain-b", { psk: undefined });
  await Promise.all([a.tunnel.start(), b.tunnel.start()]);
  b.tunnel.handleProxy(() => true);
  await a.tunnel.addPeer("plain-b", b.tunnel.peerId, b.tunnel.addrs());
  const opened = await a.tunnel.openProxyStream("plain-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 });
  opened.stream.abort(new Error("done"));
  for (const t of [a, b]) for (const r of ["key_differs", "peer_without_psk", "peer_with_psk"]) expect(t.metrics.snapshot()[`tunnel_psk_mismatch_total{reason="${r}"}`]).toBe(0);
});

test("proxy_udp_dropped_total: datagrams past the 64 a flow queues while its tunnel stream opens are dropped and counted", async () => {
  const a = testTunnel("node-a");
  const c = testTunnel("node-c");
  // The far agent takes 1.5 s to decide (then refuses): the flow's stream is opening all along.
  c.tunnel.handleProxy(async () => {
    await Bun.sleep(1500);
    return false;
  });
  await Promise.all([a.tunnel.start(), c.tunnel.start()]);
  await a.tunnel.addPeer("node-c", c.tunnel.peerId, c.tunnel.addrs());
  const dialer = createTunnelDialer({ tunnel: a.tunnel, log: a.log, metrics: a.metrics });
  cleanups.push(() => dialer.stop());
  const h = startProxy([{ name: "far", port: 53, protocol: "UDP", endpoints: [{ ip: "10.244.3.3", port: 53, node: "node-c" }] }], { remote: dialer });
  cleanups.push(() => h.proxy.stop());
  const { port } = await h.addr("far", 53, "UDP");
  const client = await Bun.udpSocket({ hostname: "127.0.0.1" });
  cleanups.push(() => client.close());
  for (let i = 0; i < 100; i++) {
    client.send(new Uint8Array([i]), port, "127.0.0.1");
    if (i % 10 === 9) await Bun.sleep(5); // paced: the service socket receives every one
  }
  const deadline = Date.now() + 1000;
  while ((h.metrics.snapshot()["proxy_udp_dropped_total"] ?? 0) < 36 && Date.now() < deadline) await Bun.sleep(20);
  // 100 sent, 64 queued: 36 dropped (fewer only if the kernel lost some on the way in).
  const dropped = h.metrics.snapshot()["proxy_udp_dropped_total"]!;
  expect(dropped).toBeGreaterThan(0);
  expect(dropped).toBeLessThanOrEqual(36);
  expect(h.proxy.stats().udpFlows).toBe(1);
});

test("proxy_udp_send_errors_total: a datagram too big for the endpoint's family (65,520 bytes in over IPv6, out over IPv4) is counted, the flow closed", async () => {
  const echo = await Bun.udpSocket({ hostname: "127.0.0.1", binaryType: "uint8array", socket: { data(sock, buf, port, addr) { sock.send(buf, port, addr); } } });
  cleanups.push(() => echo.close());
  // The service listens on IPv6 loopback (a dual-stack node's service address); its endpoint is IPv4.
  const h = startProxy([{ name: "dual", port: 53, protocol: "UDP", endpoints: [{ ip: "127.0.0.1", port: echo.port }] }], { bindHost: "::1" });
  cleanups.push(() => h.proxy.stop());
  const { port } = await h.addr("dual", 53, "UDP");
  const got: number[] = [];
  const client = await Bun.udpSocket({ hostname: "::1", binaryType: "uint8array", socket: { data(_s, buf) { got.push(buf.length); } } });
  cleanups.push(() => client.close());
  client.send(new Uint8Array(100), port, "::1"); // opens the flow
  for (let i = 0; i < 100 && got.length === 0; i++) await Bun.sleep(10);
  expect(got).toEqual([100]);
  expect(client.send(new Uint8Array(65_520), port, "::1")).toBe(true); // fits IPv6 (65,527), not IPv4 (65,507)
  for (let i = 0; i < 100 && (h.metrics.snapshot()["proxy_udp_send_errors_total"] ?? 0) === 0; i++) await Bun.sleep(10);
  expect(h.metrics.snapshot()["proxy_udp_send_errors_total"]).toBe(1);
  expect(h.proxy.stats().udpFlows).toBe(0); // closed: the next datagram opens a new one
  client.send(new Uint8Array(7), port, "::1");
  for (let i = 0; i < 100 && got.length < 2; i++) await Bun.sleep(10);
  expect(got).toEqual([100, 7]);
});

/** A node-local DNS server on a free loopback port, stopped with the other cleanups. */
async function startDns(extra: Partial<DnsOptions> = {}) {
  const metrics = createMetrics();
  const log = createMemoryLogger();
  const server = createDnsServer({
    table: tableSource(makeTable([])), listen: { host: "127.0.0.1", port: 0 }, tcp: true, clusterDomain: "cluster.local",
    ttl: 30, upstreams: [], cacheSize: 100, metrics, log, readResolvConf: () => "", ...extra,
  });
  cleanups.push(() => server.stop());
  const ports = await server.start();
  return { ...ports, metrics, log };
}

async function dig(port: number, ...args: string[]): Promise<string> {
  const p = Bun.spawn(["dig", "@127.0.0.1", "-p", String(port), "+tries=1", "+time=2", ...args], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(p.stdout).text();
  await p.exited;
  return out;
}

test("dns_tcp_rejected_total: a TCP connection over the open-connection cap is closed at once and counted", async () => {
  const dns = await startDns({ maxTcpConnections: 2 });
  const closed: boolean[] = [false, false, false];
  const open = (i: number) => Bun.connect({ hostname: "127.0.0.1", port: dns.tcpPort, socket: { data() {}, close() { closed[i] = true; } } });
  const held = [await open(0), await open(1)];
  const third = await open(2);
  cleanups.push(() => [...held, third].forEach((s) => s.end()));
  const deadline = Date.now() + 3000;
  while (!closed[2] && Date.now() < deadline) await Bun.sleep(20);
  expect(closed).toEqual([false, false, true]); // the first two stay open, the third is closed by the server
  expect(dns.metrics.snapshot()["dns_tcp_rejected_total"]).toBe(1);
  // Once one closes, a new connection is served: the cap counts open connections, not a total.
  held[0]!.end();
  await Bun.sleep(100);
  expect(await dig(dns.tcpPort, "+tcp", "web.default.svc.cluster.local")).toContain("status: NXDOMAIN");
  expect(dns.metrics.snapshot()["dns_tcp_rejected_total"]).toBe(1);
});

test("dns_forward_total{event=no_upstream}: a name outside the cluster with no upstream at all gets SERVFAIL, not counted as overload", async () => {
  const dns = await startDns(); // no upstreams, and resolv.conf names none
  expect(dns.log.lines.some((l) => l.includes("no DNS upstreams"))).toBe(true);
  expect(await dig(dns.udpPort, "www.example")).toContain("status: SERVFAIL");
  expect(await dig(dns.tcpPort, "+tcp", "other.example")).toContain("status: SERVFAIL");
  const snap = dns.metrics.snapshot();
  expect(snap['dns_forward_total{event="no_upstream"}']).toBe(2);
  expect(snap['dns_forward_total{event="overloaded"}']).toBe(0);
  expect(snap['dns_forward_total{event="upstream_query"}']).toBe(0);
});

test("cacheDNS auto-detecting a cluster DNS whose ClusterIP is no address: skipped with a warning, the next one used, DNS starts", async () => {
  // The API is not ours to trust: kube-system/coredns with a ClusterIP that is no address (this
  // used to throw in start(): no DNS at all).
  const svc = (name: string, ip: string) => ({ namespace: "kube-system", name, type: "ClusterIP", clusterIPs: [ip], externalName: "", ports: [], endpoints: [] });
  const table = deepFreeze({ version: 1, compiledAt: 0, ports: [], byKey: {}, services: [svc("coredns", "10.96.0.10:0"), svc("kube-dns", "127.0.0.1")] }) as unknown as RouteTable;
  const dns = await startDns({ table: { current: () => table, subscribe: () => () => {} }, cacheDNS: { enable: true, autoDetect: true, upstreamServers: [] } });
  expect(dns.log.lines.filter((l) => l.includes("skipping a cluster DNS service") && l.includes("kube-system/coredns")).length).toBe(1);
  expect(dns.log.lines.some((l) => l.includes("cacheDNS: forwarding every question") && l.includes("127.0.0.1:53"))).toBe(true);
  expect(dns.metrics.snapshot()["dns_zone_errors_total"]).toBe(0);
});
