// Two (or three) real tunnels in one process on 127.0.0.1: libp2p over TCP with pnet, Noise and
// yamux, proxy streams with EdgeMesh's header, refusals, PSK mismatch and secure mode.
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Stream } from "@libp2p/interface";
import { multiaddr } from "@multiformats/multiaddr";
import { DISCOVERY_PROTOCOL, MsgType, peerIdFromNodeName, PROXY_PROTOCOL, TunnelError, encodeProxy, type Tunnel, type TunnelOptions } from "../../src/tunnel/index.ts";
import { bareHost, receiveBytes, stopAllTunnels, testTunnel } from "../support/tunnels.ts";

const OTHER_PSK = new Uint8Array(32).fill(8);
const MB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), "tunnel-test-"));

afterEach(stopAllTunnels);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Sends `total` deterministic bytes obeying backpressure ('drain'); resolves with their sha256. */
export async function sendBytes(stream: Stream, total: number, seed: number): Promise<string> {
  const hash = createHash("sha256");
  const chunk = new Uint8Array(64 * 1024);
  let sent = 0;
  while (sent < total) {
    const n = Math.min(chunk.length, total - sent);
    for (let i = 0; i < n; i++) chunk[i] = (seed + sent + i * 31) & 0xff;
    const piece = chunk.slice(0, n); // the stream may keep a reference until it is written
    hash.update(piece);
    sent += n;
    if (!stream.send(piece)) await new Promise((resolve) => stream.addEventListener("drain", resolve, { once: true }));
  }
  return hash.digest("hex");
}

async function pair(extraA: Partial<TunnelOptions> = {}, extraB: Partial<TunnelOptions> = {}) {
  const a = testTunnel("node-a", extraA);
  const b = testTunnel("node-b", extraB);
  await a.tunnel.start();
  await b.tunnel.start();
  await a.tunnel.addPeer("node-b", b.tunnel.peerId, b.tunnel.addrs());
  return { a, b };
}

/** A bare libp2p node with the same PSK, to speak raw bytes on the tunnel's protocols. */
async function rawHost(target: Tunnel) {
  const raw = await bareHost([]);
  await raw.peerStore.merge(peerIdFromString(target.peerId), { multiaddrs: target.addrs().map((a) => multiaddr(a)) });
  return raw;
}

/** Sends `bytes` on a new stream of `protocol` and resolves with everything answered (hex). */
async function exchange(raw: Awaited<ReturnType<typeof rawHost>>, target: Tunnel, protocol: string, bytes: Uint8Array): Promise<string> {
  const s = await raw.dialProtocol(peerIdFromString(target.peerId), protocol);
  const reply = new Promise<string>((resolve) => {
    const parts: Uint8Array[] = [];
    const done = () => resolve(Buffer.concat(parts).toString("hex"));
    s.addEventListener("message", (e) => parts.push(e.data instanceof Uint8Array ? e.data : e.data.subarray()));
    s.addEventListener("close", done);
    s.addEventListener("remoteCloseWrite", done);
  });
  s.send(bytes);
  const hex = await reply;
  s.abort(new Error("done"));
  return hex;
}

async function refusal(p: Promise<unknown>): Promise<TunnelError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(TunnelError);
    return err as TunnelError;
  }
  throw new Error("expected a TunnelError");
}

describe("tunnel between two agents on loopback", () => {
  test("a proxy stream carries 10 MB each way intact, with the CONNECT header seen by the far agent", async () => {
    const { a, b } = await pair();
    let far: Promise<[string, string]> | undefined;
    const headers: unknown[] = [];
    b.tunnel.handleProxy((header, stream) => {
      headers.push(header);
      // Writing starts inside the handler: the tunnel holds it back until SUCCESS is sent.
      far = Promise.all([receiveBytes(stream, 10 * MB), sendBytes(stream, 10 * MB, 2)]);
      return true;
    });
    const { stream, relayed } = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.244.2.10", port: 8080 });
    expect(relayed).toBe(false);
    const [aGot, aSent] = await Promise.all([receiveBytes(stream, 10 * MB), sendBytes(stream, 10 * MB, 1)]);
    const [bGot, bSent] = await far!;
    expect(bGot).toBe(aSent);
    expect(aGot).toBe(bSent);
    expect(headers).toHaveLength(1);
    expect(headers[0]).toMatchObject({ protocol: "tcp", ip: "10.244.2.10", port: 8080, nodeName: "node-b", remotePeer: a.tunnel.peerId, udpFramed: false });
    expect(b.metrics.snapshot()["tunnel_proxy_streams_accepted_total"]).toBe(1);
    await stream.close();
  }, 60_000);

  test("a reader paused after a fast transfer holds the sender back instead of resetting the stream", async () => {
    const { a, b } = await pair();
    let far: Stream | undefined;
    let warmup: Promise<string> | undefined;
    b.tunnel.handleProxy((_h, stream) => {
      far = stream;
      warmup = receiveBytes(stream, 32 * MB);
      return true;
    });
    const { stream } = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 });
    // A fast reader first lets yamux grow the window (up to its maximum)...
    const warmSent = await sendBytes(stream, 32 * MB, 8);
    expect(await warmup).toBe(warmSent);
    // ...then the local socket stalls and the hot path pauses the stream.
    far!.pause();
    const total = 24 * MB;
    const sent = sendBytes(stream, total, 9);
    await Bun.sleep(1500);
    expect(far!.status).toBe("open");
    expect(far!.readBufferLength).toBeLessThanOrEqual(far!.maxReadBufferLength);
    const got = new Promise<string>((resolve, reject) => {
      const hash = createHash("sha256");
      let n = 0;
      const timer = setTimeout(() => reject(new Error(`received ${n}/${total}`)), 30_000);
      far!.addEventListener("message", (e) => {
        for (const buf of e.data instanceof Uint8Array ? [e.data] : e.data) {
          hash.update(buf);
          n += buf.length;
        }
        if (n >= total) {
          clearTimeout(timer);
          resolve(hash.digest("hex"));
        }
      });
    });
    far!.resume();
    expect(await got).toBe(await sent);
  }, 60_000);

  test("bytes the far side sends right after SUCCESS are not lost before the opener listens", async () => {
    const { a, b } = await pair();
    b.tunnel.handleProxy(async (_h, stream) => {
      // The endpoint speaks first (an SSH banner) before the handler has even answered.
      stream.send(new TextEncoder().encode("SSH-2.0-banner\r\n"));
      await Bun.sleep(20);
      return true;
    });
    const { stream } = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 22 });
    await Bun.sleep(100); // the banner arrives while nobody listens
    const text = await new Promise<string>((resolve) =>
      stream.addEventListener("message", (e) => resolve(new TextDecoder().decode(e.data instanceof Uint8Array ? e.data : e.data.subarray()))),
    );
    expect(text).toBe("SSH-2.0-banner\r\n");
  });

  test("a refusal by the far agent's handler reaches the opener as PROXY_REFUSED and is counted", async () => {
    const { a, b } = await pair();
    b.tunnel.handleProxy(async (header, stream) => {
      stream.send(new TextEncoder().encode("junk")); // held back, then dropped with the refusal
      return header.port === 1; // only port 1 is "an endpoint"
    });
    const err = await refusal(a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.9", port: 9999 }));
    expect(err.code).toBe("PROXY_REFUSED");
    expect(b.metrics.snapshot()["tunnel_proxy_refused_total"]).toBe(1);
    expect(a.metrics.snapshot()["tunnel_proxy_open_failures_total"]).toBe(1);
    const ok = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.9", port: 1 });
    expect(ok.stream.status).toBe("open");
  });

  test("UDP streams negotiate datagram framing between our agents", async () => {
    const { a, b } = await pair();
    let farFramed: boolean | undefined;
    b.tunnel.handleProxy((h) => ((farFramed = h.udpFramed), true));
    const udp = await a.tunnel.openProxyStream("node-b", { protocol: "udp", ip: "10.96.0.10", port: 53 });
    expect(udp.udpFramed).toBe(true);
    expect(farFramed).toBe(true);
    const tcp = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.96.0.10", port: 53 });
    expect(tcp.udpFramed).toBe(false);
  });

  test("malformed and oversized headers are answered FAILED and counted; the agent keeps serving", async () => {
    const { a, b } = await pair();
    b.tunnel.handleProxy(() => true);
    const raw = await rawHost(b.tunnel);
    const answers: string[] = [];
    const garbage = [
      Uint8Array.from([0x05, 0x08, 0x00, 0x12, 0x09, 0x61]), // string runs past the message
      Uint8Array.from([0xff, 0xff, 0x03]), // announces 65535 bytes > 4096
      encodeProxy({ type: MsgType.SUCCESS }), // not a CONNECT
      encodeProxy({ type: MsgType.CONNECT, protocol: "sctp", ip: "1.2.3.4", port: 80 }), // unknown protocol
    ];
    for (const bytes of garbage) answers.push(await exchange(raw, b.tunnel, PROXY_PROTOCOL, bytes));
    expect(answers).toEqual(["020802", "020802", "020802", "020802"]);
    expect(b.metrics.snapshot()["tunnel_proxy_bad_header_total"]).toBe(4);
    const ok = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 });
    expect(ok.stream.status).toBe("open");
  });

  test("a PSK mismatch refuses the connection and the log says why in one line", async () => {
    const { a, b } = await pair({}, { psk: OTHER_PSK });
    b.tunnel.handleProxy(() => true);
    const err = await refusal(a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 }));
    expect(err.code).toBe("NO_PEER");
    const lines = [...a.log.lines, ...b.log.lines].filter((l) => l.includes("PSK mismatch"));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines[0]).toContain("connection refused: PSK mismatch");
    expect(lines[0]).toContain("remote=/ip4/127.0.0.1/tcp/");
    const k = 'tunnel_psk_mismatch_total{reason="key_differs"}';
    expect(a.metrics.snapshot()[k]! + b.metrics.snapshot()[k]!).toBeGreaterThan(0);
    expect(b.metrics.snapshot()["tunnel_proxy_streams_accepted_total"] ?? 0).toBe(0);
  });

  test("secure mode: a peer not in the allowed list is refused, an allowed one gets through", async () => {
    const secure = (name: string, allowedPeers: string[]) => ({ identity: { mode: "secure" as const, keyFile: join(dir, `${name}.key`), allowedPeers } });
    const b = testTunnel("node-b", secure("b", []));
    await b.tunnel.start();
    b.tunnel.handleProxy(() => true);
    const bId = b.tunnel.peerId;
    const a = testTunnel("node-a", secure("a", [bId]));
    await a.tunnel.start();
    const aId = a.tunnel.peerId;
    expect(aId).not.toBe(await peerIdFromNodeName("node-a")); // a random key, not the name's
    // Secure mode derives nothing from names: without addPeer, node-b is unknown.
    expect((await refusal(a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 }))).code).toBe("NO_PEER");
    await a.tunnel.addPeer("node-b", bId, b.tunnel.addrs());
    await refusal(a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 }));
    expect(b.metrics.snapshot()["tunnel_gater_denied_total"]).toBeGreaterThan(0);
    expect(b.log.lines.some((l) => l.includes("not in the allowed list") && l.includes(aId))).toBe(true);
    // B learns A's published ID at run time.
    b.tunnel.setAllowedPeers([aId]);
    const ok = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 });
    expect(ok.stream.status).toBe("open");
    // A is removed again: its connection is closed.
    b.tunnel.setAllowedPeers([]);
    await until(() => !b.tunnel.peers().some((p) => p.peerId === aId));
    // The key file survives a restart: same peer ID.
    await a.tunnel.stop();
    const a2 = testTunnel("node-a", secure("a", [bId]));
    await a2.tunnel.start();
    expect(a2.tunnel.peerId).toBe(aId);
  }, 30_000);

  test("the discovery handshake answers EdgeMesh's CONNECT byte for byte and records the node name", async () => {
    const b = testTunnel("node2");
    await b.tunnel.start();
    const raw = await rawHost(b.tunnel);
    // Discovery { CONNECT, "MDNS", "node1" } -> Discovery { SUCCESS, "MDNS", "node2" } (vectors)
    const answer = await exchange(raw, b.tunnel, DISCOVERY_PROTOCOL, Buffer.from("0f080012044d444e531a056e6f646531", "hex"));
    expect(answer).toBe("0f080112044d444e531a056e6f646532");
    expect(b.tunnel.peers().find((p) => p.peerId === raw.peerId.toString())?.nodeName).toBe("node1");
  });

  test("the per-peer stream limit refuses the extra stream and frees its slot when a stream closes", async () => {
    const { a, b } = await pair({ maxStreamsPerPeer: 2 }, { maxStreamsPerPeer: 100 });
    b.tunnel.handleProxy(() => true);
    const target = { protocol: "tcp" as const, ip: "10.0.0.1", port: 80 };
    const first = await a.tunnel.openProxyStream("node-b", target);
    await a.tunnel.openProxyStream("node-b", target);
    const err = await refusal(a.tunnel.openProxyStream("node-b", target));
    expect(err.code).toBe("STREAM_LIMIT");
    expect(a.metrics.snapshot()['tunnel_proxy_stream_limit_total{protocol="tcp"}']).toBe(1);
    expect(a.metrics.snapshot()["tunnel_proxy_streams_open"]).toBe(2);
    expect(a.tunnel.peers().find((p) => p.nodeName === "node-b" || p.peerId === b.tunnel.peerId)?.limits.tcp).toMatchObject({ open: 2, max: 2 });
    first.stream.abort(new Error("done with it"));
    await Bun.sleep(20);
    const again = await a.tunnel.openProxyStream("node-b", target);
    expect(again.stream.status).toBe("open");
  });

  test("the total stream limit on the receiving agent answers FAILED", async () => {
    const { a, b } = await pair({}, { maxStreams: 1 });
    b.tunnel.handleProxy(() => true);
    const target = { protocol: "tcp" as const, ip: "10.0.0.1", port: 80 };
    await a.tunnel.openProxyStream("node-b", target);
    const err = await refusal(a.tunnel.openProxyStream("node-b", target));
    expect(err.code).toBe("PROXY_REFUSED");
    expect(b.metrics.snapshot()['tunnel_proxy_stream_limit_total{protocol="tcp"}']).toBe(1);
  });

  test("TCP and UDP streams have a budget each: UDP streams at their limit never keep a TCP stream out", async () => {
    const { a, b } = await pair({ maxStreamsPerPeer: 3 }, { maxStreamsPerPeer: 3, maxStreams: 3 });
    b.tunnel.handleProxy(() => true);
    const udp = { protocol: "udp" as const, ip: "10.0.0.1", port: 53 };
    const tcp = { protocol: "tcp" as const, ip: "10.0.0.1", port: 80 };
    for (let i = 0; i < 3; i++) await a.tunnel.openProxyStream("node-b", udp);
    expect((await refusal(a.tunnel.openProxyStream("node-b", udp))).code).toBe("STREAM_LIMIT");
    // Both agents are at their UDP limits (per peer on a; per peer and in total on b).
    const streams = await Promise.all([0, 1, 2].map(() => a.tunnel.openProxyStream("node-b", tcp)));
    expect(streams.every((s) => s.stream.status === "open")).toBe(true);
    expect((await refusal(a.tunnel.openProxyStream("node-b", tcp))).code).toBe("STREAM_LIMIT");
    const snap = a.metrics.snapshot();
    expect(snap['tunnel_proxy_stream_limit_total{protocol="udp"}']).toBe(1);
    expect(snap['tunnel_proxy_stream_limit_total{protocol="tcp"}']).toBe(1);
    expect(snap['tunnel_proxy_streams_open_by_protocol{protocol="udp"}']).toBe(3);
    expect(snap['tunnel_proxy_peer_streams{peer="node-b",protocol="tcp"}']).toBe(3);
    const limits = a.tunnel.peers().find((p) => p.peerId === b.tunnel.peerId)!.limits;
    expect(limits.udp).toMatchObject({ open: 3, max: 3 });
    expect(limits.tcp).toMatchObject({ open: 3, max: 3 });
    expect(b.metrics.render()).toContain('edgemesh_tunnel_proxy_streams_max{protocol="udp"} 3');
  });

  test("a PSK with the QUIC-only transport is refused at start with a message that says why", async () => {
    const q = testTunnel("node-q", { transport: "quic", listenAddrs: [] });
    const err = await refusal(q.tunnel.start());
    expect(err.code).toBe("BAD_CONFIG");
    expect(err.message).toContain("QUIC");
  });

  test("20,000 short-lived UDP flows leave no stream behind and TCP still gets through (EdgeMesh #567)", async () => {
    const { a, b } = await pair();
    b.tunnel.handleProxy((_h, stream) => {
      // The far side closes its half when the opener closes (as the hot path does on idle-out).
      stream.addEventListener("remoteCloseWrite", () => void stream.close().catch(() => {}));
      return true;
    });
    const flows = 20_000;
    const batch = 100;
    for (let i = 0; i < flows; i += batch) {
      await Promise.all(
        Array.from({ length: batch }, async (_, j) => {
          const { stream } = await a.tunnel.openProxyStream("node-b", { protocol: "udp", ip: "10.96.0.10", port: 1024 + ((i + j) % 60000) });
          stream.send(Uint8Array.of(0, 1, 42));
          await stream.close();
        }),
      );
    }
    await until(() => a.metrics.snapshot()["tunnel_proxy_streams_open"] === 0 && b.metrics.snapshot()["tunnel_proxy_streams_open"] === 0);
    expect(a.metrics.snapshot()["tunnel_proxy_streams_opened_total"]).toBe(flows);
    expect(b.metrics.snapshot()["tunnel_proxy_streams_accepted_total"]).toBe(flows);
    const tcp = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 });
    expect(tcp.stream.status).toBe("open");
  }, 120_000);
});

async function until(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(20);
  }
}
