// Early data through real tunnels on loopback: once agent B has said (in a SUCCESS) that it takes
// payload behind CONNECT, agent A sends a client's first bytes right behind the CONNECT instead of
// waiting for the answer. B's handler waits a little before deciding, so bytes already in its
// stream when it answers can only have been sent before SUCCESS. A FAILED after early bytes still
// fails over with the bytes replayed, and a far side that never sets the bit (as EdgeMesh's agent,
// which drops bytes that arrive with the header) never gets early bytes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { randomBytes } from "node:crypto";
import { multiaddr } from "@multiformats/multiaddr";
import type { Stream } from "@libp2p/interface";
import { createInboundHandler, createTunnelDialer } from "../../src/hotpath/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import type { MetricsRegistry } from "../../src/metrics/index.ts";
import { decodeProxyBody, encodeProxy, MsgType, PROXY_PROTOCOL, type ProxyHeader, type Tunnel } from "../../src/tunnel/index.ts";
import { FEATURE_EARLY_DATA } from "../../src/tunnel/constants.ts";
import { newStreamLazy, readHeader, readSelected } from "../../src/tunnel/header-io.ts";
import { bareHost, stopAllTunnels, testTunnel } from "../support/tunnels.ts";
import { makeTable, startProxy, type Harness, type PortSpec } from "./proxy-support.ts";

/** How long the far side waits before it answers: early bytes have arrived by then. */
const DECIDE_MS = 50;

interface FarRecord {
  ip: string;
  /** Payload bytes waiting in the stream when the far side answered. */
  early: number;
  features: number;
}

const closers: (() => unknown)[] = [stopAllTunnels];
let echo: TCPSocketListener<unknown>;
let a: { tunnel: Tunnel; metrics: MetricsRegistry; h: Harness };
const atB: FarRecord[] = [];
const atE: FarRecord[] = [];

function metric(m: MetricsRegistry, name: string): number {
  let sum = 0;
  for (const [k, v] of Object.entries(m.snapshot())) if (k === name || k.startsWith(name + "{")) sum += v;
  return sum;
}

async function agent(name: string, specs: PortSpec[], wrap?: (h: ProxyHeader, s: Stream, inner: () => boolean | Promise<boolean>) => Promise<boolean>) {
  const { tunnel, metrics } = testTunnel(name);
  await tunnel.start();
  const log = createMemoryLogger();
  const h = startProxy(specs, { nodeName: name, remote: createTunnelDialer({ tunnel, log, metrics }), metrics, udpIdleTimeoutMs: 300 });
  closers.push(() => h.proxy.stop());
  const inbound = createInboundHandler({ proxy: h.proxy, table: h.table, nodeName: name, udpIdleTimeoutMs: 300, log, metrics });
  closers.push(() => inbound.stop());
  tunnel.handleProxy(wrap ? (hd, s) => wrap(hd, s, () => inbound.handle(hd, s)) : inbound.handle);
  return { tunnel, metrics, h };
}

/** A bare libp2p node with the test PSK on loopback, stopped with the tunnels. */
const rawHost = () => bareHost();

/** A far agent that answers like EdgeMesh's: SUCCESS without acceptedFeatures, then echoes. */
async function edgeMeshLike(): Promise<{ peerId: string; addrs: string[] }> {
  const raw = await rawHost();
  await raw.handle(PROXY_PROTOCOL, async (stream: Stream) => {
    try {
      const h = await readHeader(stream, decodeProxyBody, 5_000);
      await Bun.sleep(DECIDE_MS);
      atE.push({ ip: h.ip ?? "", early: stream.readBufferLength, features: h.features ?? 0 });
      stream.send(encodeProxy({ type: MsgType.SUCCESS }));
      stream.addEventListener("message", (e) => {
        for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) stream.send(b.slice());
      });
      stream.addEventListener("remoteCloseWrite", () => void stream.close().catch(() => {}));
    } catch {
      stream.abort(new Error("bad stream"));
    }
  });
  return { peerId: raw.peerId.toString(), addrs: raw.getMultiaddrs().map(String) };
}

/** Connects, sends `payload`, waits for as many bytes back, closes; resolves with what came back. */
function roundTrip(port: number, payload: Uint8Array, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let got = 0;
    let off = 0;
    const timer = setTimeout(() => reject(new Error(`got ${got}/${payload.length} bytes back`)), timeoutMs);
    const pump = (s: { write(b: Uint8Array): number }) => {
      while (off < payload.length) {
        const n = s.write(payload.subarray(off));
        if (n <= 0) return;
        off += n;
      }
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        binaryType: "uint8array",
        open: pump,
        drain: pump,
        data(s, b) {
          parts.push(Buffer.from(b));
          got += b.length;
          if (got >= payload.length) {
            clearTimeout(timer);
            s.end();
            resolve(Buffer.concat(parts));
          }
        },
        close: () => {
          clearTimeout(timer);
          if (got < payload.length) reject(new Error(`closed after ${got}/${payload.length} bytes`));
        },
        error: (_s, e) => reject(e),
      },
    }).catch(reject);
  });
}

beforeAll(async () => {
  echo = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: { data: (s, d) => void s.write(d), end: (s) => void s.end() },
  });
  closers.push(() => echo.stop(true));
  const onB = (ip = "127.0.0.1") => ({ ip, port: echo.port, node: "node-b" });
  a = await agent("node-a", [
    { name: "echo", endpoints: [onB()] },
    // B does not list 127.0.0.2: it answers FAILED and A fails over (to B again, or locally).
    { name: "failover", endpoints: [onB("127.0.0.2"), onB()] },
    { name: "failover-local", endpoints: [onB("127.0.0.2"), { ip: "127.0.0.1", port: echo.port, node: "node-a" }] },
    { name: "edge", endpoints: [{ ip: "127.0.0.1", port: echo.port, node: "node-e" }] },
  ]);
  const b = await agent("node-b", [{ name: "echo", endpoints: [onB()] }], async (h, s, inner) => {
    await Bun.sleep(DECIDE_MS);
    atB.push({ ip: h.ip, early: s.readBufferLength, features: 0 });
    return inner();
  });
  await a.tunnel.addPeer("node-b", b.tunnel.peerId, b.tunnel.addrs());
  const e = await edgeMeshLike();
  await a.tunnel.addPeer("node-e", e.peerId, e.addrs);
}, 30_000);

afterAll(async () => {
  for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => {});
});

describe("early data through the tunnel", () => {
  test("between two of our agents, connections after the first send the client's bytes before SUCCESS", async () => {
    const { port } = await a.h.addr("echo");
    const earlyBefore = metric(a.metrics, "tunnel_proxy_early_data_streams_total");
    for (let i = 0; i < 6; i++) {
      const req = randomBytes(1024);
      expect((await roundTrip(port, req)).equals(req)).toBe(true);
    }
    expect(atB.length).toBe(6);
    expect(atB[0]!.early).toBe(0); // the first stream to a peer runs as before: nothing ahead of SUCCESS
    for (const r of atB.slice(1)) expect(r.early).toBeGreaterThan(0);
    expect(metric(a.metrics, "tunnel_proxy_early_data_streams_total") - earlyBefore).toBe(5);
  });

  test("a request larger than the early limit arrives intact, with at most about 64 KiB sent ahead", async () => {
    const { port } = await a.h.addr("echo");
    const n = atB.length;
    const req = randomBytes(512 * 1024);
    expect((await roundTrip(port, req)).equals(req)).toBe(true);
    expect(atB.length).toBe(n + 1);
    expect(atB[n]!.early).toBeGreaterThan(0);
    // The cap is checked per chunk: one client chunk may go past it.
    expect(atB[n]!.early).toBeLessThanOrEqual(128 * 1024);
  });

  test("FAILED after early bytes: the request is replayed on the next endpoint, on the far node or locally", async () => {
    const refusedEarly = () => atB.filter((r) => r.ip === "127.0.0.2" && r.early > 0).length;
    const before = refusedEarly();
    for (const name of ["failover", "failover-local"]) {
      const { port } = await a.h.addr(name);
      for (let i = 0; i < 6; i++) {
        const req = randomBytes(i % 2 === 0 ? 1024 : 100 * 1024);
        expect((await roundTrip(port, req)).equals(req)).toBe(true);
      }
    }
    // Round robin over two endpoints: some connections tried the refused one first, with early bytes.
    expect(refusedEarly() - before).toBeGreaterThanOrEqual(2);
    expect(metric(a.metrics, "tunnel_proxy_open_failures_total")).toBeGreaterThan(0);
  }, 30_000);

  test("a far agent that never accepts the feature (EdgeMesh) never receives early bytes", async () => {
    const { port } = await a.h.addr("edge");
    const earlyBefore = metric(a.metrics, "tunnel_proxy_early_data_streams_total");
    for (let i = 0; i < 5; i++) {
      const req = randomBytes(i === 4 ? 100 * 1024 : 1024);
      expect((await roundTrip(port, req)).equals(req)).toBe(true);
    }
    expect(atE.length).toBe(5);
    for (const r of atE) {
      expect(r.features & FEATURE_EARLY_DATA).toBe(FEATURE_EARLY_DATA); // we offered it
      expect(r.early).toBe(0); // and, not accepted, never used it
    }
    expect(metric(a.metrics, "tunnel_proxy_early_data_streams_total")).toBe(earlyBefore);
  }, 30_000);
});

describe("lazy protocol select (the select lines go out with the first bytes)", () => {
  const ECHO = "/test/echo/1.0.0";
  async function connected() {
    const far = await rawHost();
    await far.handle(ECHO, (stream: Stream) => {
      stream.addEventListener("message", (e) => {
        for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) stream.send(b.slice());
      });
    });
    const near = await rawHost();
    const conn = await near.dial(multiaddr(far.getMultiaddrs()[0]!.toString()));
    return { conn, signal: AbortSignal.timeout(5_000) };
  }

  test("bytes sent before the answer reach the handler intact, and the answer reads as selected", async () => {
    const { conn, signal } = await connected();
    const { stream, lazy } = await newStreamLazy(conn, ECHO, { runOnLimitedConnection: true, signal });
    expect(lazy).toBe(true);
    const payload = randomBytes(3000);
    stream.send(payload);
    const back = new Promise<Buffer>((resolve) => {
      const parts: Buffer[] = [];
      let got = 0;
      const onMessage = (e: { data: Uint8Array | Iterable<Uint8Array> }) => {
        for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) {
          parts.push(Buffer.from(b));
          got += b.length;
        }
        if (got >= payload.length) resolve(Buffer.concat(parts));
      };
      // The echo follows the select answer: read that first, then listen for the payload.
      void readSelected(stream, ECHO, 5_000).then(() => stream.addEventListener("message", onMessage));
    });
    expect((await back).equals(payload)).toBe(true);
    stream.abort(new Error("done"));
  });

  test("a peer that does not speak the protocol fails the select", async () => {
    const { conn, signal } = await connected();
    const { stream } = await newStreamLazy(conn, "/test/none/1.0.0", { runOnLimitedConnection: true, signal });
    stream.send(new TextEncoder().encode("ignored"));
    await expect(readSelected(stream, "/test/none/1.0.0", 5_000)).rejects.toThrow("did not select");
    stream.abort(new Error("done"));
  });
});
