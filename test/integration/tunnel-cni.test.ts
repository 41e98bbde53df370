// /libp2p/tunnel-cni/1.0.0 between real libp2p hosts on loopback (PSK, Noise, yamux): our two
// ends, and each end against a peer that speaks it the way EdgeMesh's beta does (its CONNECT
// fields, its SUCCESS that echoes the request, one stream per packet, raw IP packets after).
import { afterEach, describe, expect, test } from "bun:test";
import type { Stream } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { readHeader } from "../../src/tunnel/header-io.ts";
import { CNI_PROTOCOL, decodeProxyBody, encodeProxy, FEATURE_CNI_VNET, MsgType, splitDelimited, TunnelError, type CniHeader, type ProxyMsg } from "../../src/tunnel/index.ts";
import { bareHost, stopAllTunnels, testTunnel } from "../support/tunnels.ts";

afterEach(() => stopAllTunnels());

async function pair() {
  const a = testTunnel("node-a");
  const b = testTunnel("node-b");
  await a.tunnel.start();
  await b.tunnel.start();
  await a.tunnel.addPeer("node-b", b.tunnel.peerId, b.tunnel.addrs());
  return { a, b };
}

/** Collects every byte that arrives on `s`. */
function collect(s: Stream): () => Uint8Array {
  const parts: Uint8Array[] = [];
  s.addEventListener("message", (e) => {
    for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) parts.push(b.slice());
  });
  return () => Buffer.concat(parts);
}

const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await Bun.sleep(10);
  return cond();
};

describe("tunnel: the Edge CNI stream protocol", () => {
  test("our two agents: CONNECT names the target node, the virtio feature is agreed, bytes flow", async () => {
    const { a, b } = await pair();
    const seen: CniHeader[] = [];
    let got: (() => Uint8Array) | undefined;
    b.tunnel.handleCni((h, s) => {
      seen.push(h);
      got = collect(s);
      return h.features & FEATURE_CNI_VNET;
    });
    const opened = await a.tunnel.openCniStream("node-b", FEATURE_CNI_VNET);
    expect(opened.acceptedFeatures).toBe(FEATURE_CNI_VNET);
    expect(opened.relayed).toBe(false);
    expect(seen).toEqual([{ remotePeer: a.tunnel.peerId, remoteNode: undefined, nodeName: "node-b", features: FEATURE_CNI_VNET }]);
    const payload = new Uint8Array(300_000).map((_, i) => i & 255);
    opened.stream.send(payload);
    expect(await until(() => got!().length === payload.length)).toBe(true);
    expect(got!()).toEqual(payload);
    expect(a.metrics.snapshot()["tunnel_cni_streams_opened_total"]).toBe(1);
    expect(b.metrics.snapshot()["tunnel_cni_streams_accepted_total"]).toBe(1);
    // The gauge of streams open now, on both ends, while this one is open.
    expect(a.metrics.snapshot()["tunnel_cni_streams_open"]).toBe(1);
    expect(b.metrics.snapshot()["tunnel_cni_streams_open"]).toBe(1);
    expect(a.metrics.snapshot()["tunnel_cni_open_failures_total"]).toBe(0);
  });

  test("a far agent without the Edge CNI answers FAILED: the open is refused with a clear error", async () => {
    const { a, b } = await pair();
    let err: unknown;
    await a.tunnel.openCniStream("node-b", 0).catch((e) => (err = e));
    expect(err).toBeInstanceOf(TunnelError);
    expect((err as Error).message).toContain("refused the CNI stream");
    expect(b.metrics.snapshot()["tunnel_cni_refused_total"]).toBe(1);
    expect(a.metrics.snapshot()["tunnel_cni_open_failures_total"]).toBe(1); // the opener counts the refusal
  });

  test("an EdgeMesh-style opener: its CONNECT is accepted, the SUCCESS carries no feature bits, raw packets arrive", async () => {
    const { b } = await pair();
    let read: (() => Uint8Array) | undefined;
    let offered = -1;
    b.tunnel.handleCni((h, s) => {
      offered = h.features;
      read = collect(s);
      return h.features & FEATURE_CNI_VNET;
    });
    const raw = await bareHost([]);
    await raw.peerStore.merge(peerIdFromString(b.tunnel.peerId), { multiaddrs: b.tunnel.addrs().map((x) => multiaddr(x)) });
    const s = await raw.dialProtocol(peerIdFromString(b.tunnel.peerId), CNI_PROTOCOL);
    // pkg/tunnel GetCNIAdapterStream: Protocol = frame.GetProtocol() ("\tprotocol=%d\n"), the
    // target's NodeName, Ip "" and Port 0 (pointers to zero values: present on the wire).
    s.send(encodeProxy({ type: MsgType.CONNECT, protocol: "\tprotocol=6\n", nodeName: "node-b", ip: "", port: 0 }));
    const reply = await readHeader(s, decodeProxyBody, 5000);
    expect(reply).toEqual({ type: MsgType.SUCCESS });
    const packet = new Uint8Array([0x45, 0, 0, 20, ...new Array(16).fill(1)]);
    s.send(packet);
    expect(await until(() => (read?.().length ?? 0) === packet.length)).toBe(true);
    expect(read!()).toEqual(packet);
    expect(offered).toBe(0);
  });

  test("an EdgeMesh-style receiver sees EdgeMesh's CONNECT layout; its echoed SUCCESS is not mistaken for accepting features", async () => {
    const { a } = await pair();
    const raw = await bareHost();
    let connect: ProxyMsg | undefined;
    let body: Uint8Array | undefined;
    let got: (() => Uint8Array) | undefined;
    await raw.handle(CNI_PROTOCOL, async (s: Stream) => {
      const parts: Uint8Array[] = [];
      const first = await new Promise<Uint8Array>((resolve) =>
        s.addEventListener("message", function on(e) {
          parts.push(e.data instanceof Uint8Array ? e.data : e.data.subarray());
          const all = Buffer.concat(parts);
          if (splitDelimited(all)) {
            s.removeEventListener("message", on);
            resolve(all);
          }
        }),
      );
      const split = splitDelimited(first)!;
      body = split.body;
      connect = decodeProxyBody(split.body);
      got = collect(s);
      // EdgeMesh: msg.Type = SUCCESS on the message it read, then WriteMsg(msg): an echo.
      const echo = new Uint8Array(body.length + 1);
      echo.set(body, 1);
      echo[0] = body.length;
      const i = echo.indexOf(0x08, 1); // field 1 (type), varint
      echo[i + 1] = MsgType.SUCCESS;
      s.send(echo);
    });
    await a.tunnel.addPeer("node-x", raw.peerId.toString(), raw.getMultiaddrs().map(String));
    const opened = await a.tunnel.openCniStream("node-x", FEATURE_CNI_VNET);
    expect(connect).toMatchObject({ type: MsgType.CONNECT, nodeName: "node-x", ip: "", port: 0, features: FEATURE_CNI_VNET });
    // ip "" and port 0 are on the wire, as EdgeMesh's pointers put them (field 4 empty, field 5 zero).
    expect(Buffer.from(body!).includes(Buffer.from([0x22, 0x00, 0x28, 0x00]))).toBe(true);
    expect(opened.acceptedFeatures).toBe(0);
    opened.stream.send(new Uint8Array([0x45, 0, 0, 20, ...new Array(16).fill(2)]));
    expect(await until(() => (got?.().length ?? 0) === 20)).toBe(true);
  });

  test("EdgeMesh's one-stream-per-packet opener: a peer keeps at most 8 inbound streams, the oldest are reset", async () => {
    const { b } = await pair();
    const streams: Stream[] = [];
    b.tunnel.handleCni((_h, s) => {
      streams.push(s);
      return 0;
    });
    const raw = await bareHost([]);
    await raw.peerStore.merge(peerIdFromString(b.tunnel.peerId), { multiaddrs: b.tunnel.addrs().map((x) => multiaddr(x)) });
    for (let i = 0; i < 10; i++) {
      const s = await raw.dialProtocol(peerIdFromString(b.tunnel.peerId), CNI_PROTOCOL);
      s.send(encodeProxy({ type: MsgType.CONNECT, protocol: "\tprotocol=1\n", nodeName: "node-b", ip: "", port: 0 }));
      await readHeader(s, decodeProxyBody, 5000);
    }
    expect(await until(() => streams.filter((s) => s.status === "open").length === 8)).toBe(true);
    expect(streams[0]!.status).not.toBe("open");
    expect(b.metrics.snapshot()["tunnel_cni_streams_evicted_total"]).toBe(2);
  });

  test("a stream of garbage instead of a CONNECT is answered FAILED and counted", async () => {
    const { b } = await pair();
    b.tunnel.handleCni(() => 0);
    const raw = await bareHost([]);
    await raw.peerStore.merge(peerIdFromString(b.tunnel.peerId), { multiaddrs: b.tunnel.addrs().map((x) => multiaddr(x)) });
    const s = await raw.dialProtocol(peerIdFromString(b.tunnel.peerId), CNI_PROTOCOL);
    s.send(encodeProxy({ type: MsgType.SUCCESS }));
    expect(await readHeader(s, decodeProxyBody, 5000)).toEqual({ type: MsgType.FAILED });
    expect(b.metrics.snapshot()["tunnel_cni_bad_header_total"]).toBe(1);
  });
});

