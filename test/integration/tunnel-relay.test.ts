// A and B reach each other only through relay R (circuit relay v2) on loopback: B has no
// listener of its own, only its reservation on R. The relay must not apply v2's default limits
// (128 KiB / 2 min per relayed connection), as EdgeMesh's relays do not.
import { afterEach, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import type { Stream } from "@libp2p/interface";
import { createTunnelDialer } from "../../src/hotpath/remote/index.ts";
import type { ByteStream } from "../../src/hotpath/types.ts";
import { receiveBytes, stopAllTunnels, testTunnel } from "../support/tunnels.ts";

const MB = 1024 * 1024;

afterEach(stopAllTunnels);

async function sendBytes(stream: Stream, total: number, seed: number): Promise<string> {
  const hash = createHash("sha256");
  let sent = 0;
  while (sent < total) {
    const n = Math.min(32 * 1024, total - sent);
    const piece = new Uint8Array(n);
    for (let i = 0; i < n; i++) piece[i] = (seed + sent + i * 13) & 0xff;
    hash.update(piece);
    sent += n;
    if (!stream.send(piece)) await new Promise((resolve) => stream.addEventListener("drain", resolve, { once: true }));
  }
  return hash.digest("hex");
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
}

test("a proxy stream through the relay carries 1 MB each way, beyond v2's 128 KiB default limit", async () => {
  const r = testTunnel("relay", { isRelay: true });
  await r.tunnel.start();
  const relayAddr = r.tunnel.addrs()[0]!.replace(/\/p2p\/.*$/, "");
  const relayNodes = [{ nodeName: "relay", advertiseAddress: [relayAddr] }];
  const b = testTunnel("node-b", { relayNodes, listenAddrs: [] }); // reachable only via R
  const a = testTunnel("node-a", { relayNodes });
  await b.tunnel.start();
  await a.tunnel.start();
  await until("B's reservation on R", () => b.tunnel.addrs().some((x) => x.includes("/p2p-circuit")));
  expect(b.tunnel.addrs().every((x) => x.includes("/p2p-circuit"))).toBe(true);

  let far: Promise<[string, string]> | undefined;
  b.tunnel.handleProxy((_h, stream) => {
    far = Promise.all([receiveBytes(stream, MB), Bun.sleep(0).then(() => sendBytes(stream, MB, 5))]);
    return true;
  });
  // A knows nothing of B but its name: the peer ID is derived, the path goes through R.
  const { stream, relayed } = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.244.9.9", port: 80 });
  expect(relayed).toBe(true);
  const [aGot, aSent] = await Promise.all([receiveBytes(stream, MB), sendBytes(stream, MB, 6)]);
  const [bGot, bSent] = await far!;
  expect(bGot).toBe(aSent);
  expect(aGot).toBe(bSent);
  const viaR = a.tunnel.peers().find((p) => p.nodeName === "node-b" || p.peerId === b.tunnel.peerId);
  expect(viaR?.relayed).toBe(true);
  expect(viaR?.addrs[0]).toContain(`/p2p/${r.tunnel.peerId}/p2p-circuit`);
}, 60_000);

test("the proxy's dialer counts a stream over the relayed connection: proxy_remote_relayed_streams_total per node", async () => {
  const r = testTunnel("relay", { isRelay: true });
  await r.tunnel.start();
  const relayNodes = [{ nodeName: "relay", advertiseAddress: [r.tunnel.addrs()[0]!.replace(/\/p2p\/.*$/, "")] }];
  const b = testTunnel("node-b", { relayNodes, listenAddrs: [] }); // reachable only via R
  const a = testTunnel("node-a", { relayNodes });
  await b.tunnel.start();
  await a.tunnel.start();
  await until("B's reservation on R", () => b.tunnel.addrs().some((x) => x.includes("/p2p-circuit")));
  b.tunnel.handleProxy(() => true);
  const dialer = createTunnelDialer({ tunnel: a.tunnel, log: a.log, metrics: a.metrics });
  try {
    const opened = await new Promise<ByteStream>((resolve, reject) =>
      dialer.dial("node-b", "10.244.9.9", 80, "TCP", { open: resolve, fail: reject, data() {}, drain() {}, end() {}, close() {} }),
    );
    opened.terminate();
    const snap = a.metrics.snapshot();
    expect(snap['proxy_remote_streams_total{node="node-b"}']).toBe(1);
    expect(snap['proxy_remote_relayed_streams_total{node="node-b"}']).toBe(1);
    expect(snap['proxy_remote_relayed_streams_total{node="relay"}'] ?? 0).toBe(0);
  } finally {
    dialer.stop();
  }
}, 30_000);

test("a node reconnects to its relay after the relay restarts", async () => {
  const r = testTunnel("relay", { isRelay: true });
  await r.tunnel.start();
  const relayAddr = r.tunnel.addrs()[0]!.replace(/\/p2p\/.*$/, "");
  const a = testTunnel("node-a", { relayNodes: [{ nodeName: "relay", advertiseAddress: [relayAddr] }] });
  await a.tunnel.start();
  await until("A connected to R", () => a.tunnel.peers().some((p) => p.peerId === r.tunnel.peerId));
  await r.tunnel.stop();
  await until("A noticed R is gone", () => !a.tunnel.peers().some((p) => p.peerId === r.tunnel.peerId));
  const r2 = testTunnel("relay", { isRelay: true, listenAddrs: [relayAddr] });
  await r2.tunnel.start();
  await until("A reconnected to R", () => a.tunnel.peers().some((p) => p.peerId === r2.tunnel.peerId), 20_000);
  // The reconnect was a dial of R's configured address, counted by its result.
  expect(a.metrics.snapshot()['tunnel_relay_dials_total{result="ok"}']).toBeGreaterThanOrEqual(1);
  expect(a.log.lines.some((l) => l.includes("connected to relay"))).toBe(true);
}, 40_000);

test("relay nodes changed while running are dialed without a restart", async () => {
  const r = testTunnel("relay", { isRelay: true });
  await r.tunnel.start();
  const a = testTunnel("node-a");
  await a.tunnel.start();
  expect(a.tunnel.peers()).toEqual([]);
  a.tunnel.setRelayNodes([{ nodeName: "relay", advertiseAddress: [r.tunnel.addrs()[0]!.replace(/\/p2p\/.*$/, "")] }]);
  await until("A connected to the new relay", () => a.tunnel.peers().some((p) => p.peerId === r.tunnel.peerId));
  await until("A learned the relay's node name", () => a.tunnel.peers().some((p) => p.nodeName === "relay"));
  await until("A holds a reservation on the new relay", () => a.tunnel.addrs().some((x) => x.includes(`/p2p/${r.tunnel.peerId}/p2p-circuit`)));
}, 20_000);

test("a bad relay address given at run time is logged, not thrown", async () => {
  const a = testTunnel("node-a");
  await a.tunnel.start();
  a.tunnel.setRelayNodes([{ nodeName: "relay", advertiseAddress: ["/ip4/not-an-ip/tcp/1"] }]);
  await until("the error line", () => a.log.lines.some((l) => l.includes("relay nodes not applied") && l.includes("not-an-ip")));
  expect(a.tunnel.peers()).toEqual([]);
});
