// Failure-path counters the e2e observability drive cannot provoke cheaply, each made to move
// here by the failure it counts (test/e2e/observability.test.ts names this file for them).

import { afterAll, expect, test } from "bun:test";
import { stopAllTunnels, testTunnel } from "../support/tunnels.ts";
import { runCleanups, startProxy } from "./proxy-support.ts";

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
  expect(a.log.lines.some((l) => l.includes("encrypted handshake failed"))).toBe(true);
  expect(b.metrics.snapshot()["tunnel_proxy_streams_accepted_total"] ?? 0).toBe(0);
});
