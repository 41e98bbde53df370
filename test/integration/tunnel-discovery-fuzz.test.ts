// The discovery protocol (/libp2p/tunnel-discovery/1.0.0) against a live agent's tunnel, from a
// connected peer that sends garbage: random bytes, mutated CONNECTs, huge length prefixes,
// oversized names, two headers at once, a reset mid-header, nothing at all. Every bad stream is
// answered FAILED (or closed) and counted, the agent's view of node names is not touched by it,
// no stream stays open on the connection, and the agent still handshakes and proxies afterwards.

import { afterAll, describe, expect, test } from "bun:test";
import type { Stream } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { decodeDiscovery, DISCOVERY_PROTOCOL, encodeDiscovery, MsgType } from "../../src/tunnel/index.ts";
import { isNodeName } from "../../src/tunnel/discovery.ts";
import { bareHost, stopAllTunnels, testTunnel } from "../support/tunnels.ts";
import { rng } from "../support/rng.ts";

afterAll(stopAllTunnels);

type Outcome = "FAILED" | "SUCCESS" | "closed" | "reset";

/** One stream: send `pieces` (then half-close, or reset when `reset`), read the whole answer. */
async function probe(stream: Stream, pieces: Uint8Array[], opts: { reset?: boolean; keepOpen?: boolean } = {}): Promise<{ outcome: Outcome; name?: string }> {
  const answer = new Promise<{ outcome: Outcome; name?: string }>((resolve) => {
    const parts: Uint8Array[] = [];
    const done = (reset: boolean) => {
      const bytes = Buffer.concat(parts);
      if (bytes.length === 0) return resolve({ outcome: reset ? "reset" : "closed" });
      try {
        const m = decodeDiscovery(new Uint8Array(bytes));
        resolve({ outcome: m.type === MsgType.SUCCESS ? "SUCCESS" : "FAILED", name: m.nodeName });
      } catch {
        resolve({ outcome: "closed" });
      }
    };
    stream.addEventListener("message", (e) => parts.push(e.data instanceof Uint8Array ? e.data : e.data.subarray()));
    stream.addEventListener("remoteCloseWrite", () => done(false));
    stream.addEventListener("close", (e) => done((e as { error?: Error }).error !== undefined));
  });
  for (const p of pieces) stream.send(p);
  if (opts.reset) stream.abort(new Error("reset by the fuzzer"));
  else if (!opts.keepOpen) await stream.close().catch(() => {});
  const out = await Promise.race([answer, Bun.sleep(15_000).then(() => ({ outcome: "closed" as Outcome, name: "TIMEOUT" }))]);
  if (stream.status === "open") stream.abort(new Error("done"));
  return out;
}

function garbage(r: (n: number) => number): { pieces: Uint8Array[]; reset?: boolean; what: string } {
  const valid = encodeDiscovery({ type: MsgType.CONNECT, protocol: "MDNS", nodeName: "fuzzer" });
  switch (r(9)) {
    case 0: {
      const b = new Uint8Array(1 + r(600));
      for (let i = 0; i < b.length; i++) b[i] = r(256);
      return { pieces: [b], what: "random bytes" };
    }
    case 1: {
      const b = valid.slice();
      for (let k = 1 + r(4); k > 0; k--) b[1 + r(b.length - 1)] = r(256);
      return { pieces: [b], what: "mutated CONNECT" };
    }
    case 2: return { pieces: [valid.slice(0, 1 + r(valid.length - 1))], what: "truncated CONNECT, then close" };
    case 3: return { pieces: [Uint8Array.of(0xff, 0xff, 0xff, 0x7f)], what: "a 256 MiB length prefix" };
    case 4: return { pieces: [Uint8Array.of(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01)], what: "a 7-byte varint" };
    case 5: return { pieces: [encodeDiscovery({ type: MsgType.CONNECT, protocol: "M".repeat(3000), nodeName: "n".repeat(1000) })], what: "names too large to echo" };
    case 6: return { pieces: [encodeDiscovery({ type: MsgType.SUCCESS, nodeName: "liar" }), valid], what: "SUCCESS first, then CONNECT" };
    case 7: return { pieces: [Uint8Array.of(4, 0x08, 0x00, 0x1a, 0x05), Uint8Array.of(0xff)], what: "split, invalid UTF-8 name" };
    default: return { pieces: [valid.slice(0, 3)], reset: true, what: "reset mid-header" };
  }
}

describe("discovery protocol fuzz against a live tunnel", () => {
  test("600 malformed streams: answered FAILED or closed, counted, no stream left, names untouched; the agent still works", async () => {
    const b = testTunnel("node-b");
    await b.tunnel.start();
    b.tunnel.handleProxy(() => true);
    const raw = await bareHost([]);
    const target = peerIdFromString(b.tunnel.peerId);
    await raw.peerStore.merge(target, { multiaddrs: b.tunnel.addrs().map((a) => multiaddr(a)) });
    const conn = await raw.dial(target);
    const failedBefore = b.metrics.snapshot()["tunnel_discovery_failures_total"] ?? 0;

    const r = rng(0xf022);
    const outcomes = new Map<string, number>();
    /** A mutation can land on another valid CONNECT: that one must be answered SUCCESS. */
    const validNames = new Set<string>();
    let invalid = 0;
    let resets = 0;
    let n = 0;
    // 16 at a time: under the protocol's inbound stream limit, so every stream reaches the handler.
    const worker = async () => {
      while (n < 600) {
        n++;
        const g = garbage(r);
        const stream = await conn.newStream(DISCOVERY_PROTOCOL);
        let valid: string | undefined;
        try {
          const m = decodeDiscovery(new Uint8Array(Buffer.concat(g.pieces)));
          if (m.type === MsgType.CONNECT && isNodeName(m.nodeName) && !g.reset) valid = m.nodeName;
        } catch {
          // malformed: expected to be refused
        }
        const res = await probe(stream, g.pieces, { reset: g.reset });
        if (res.name === "TIMEOUT") throw new Error(`${g.what}: no answer within 15 s`);
        if (valid !== undefined) {
          expect(res).toEqual({ outcome: "SUCCESS", name: "node-b" });
          validNames.add(valid);
          continue;
        }
        invalid++;
        if (g.reset) resets++;
        if (res.outcome === "SUCCESS") throw new Error(`${g.what} was answered SUCCESS`);
        const key = `${g.what}: ${res.outcome}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    // One opener that sends nothing and keeps its side open: freed by the header timeout (10 s).
    const silent = await probe(await conn.newStream(DISCOVERY_PROTOCOL), [], { keepOpen: true });
    console.log(`discovery fuzz (live): ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}; silent opener: ${silent.outcome}`);
    expect(silent.outcome).toBe("FAILED");

    await Bun.sleep(200);
    expect(conn.streams.filter((s) => s.protocol === DISCOVERY_PROTOCOL)).toHaveLength(0);
    const failed = (b.metrics.snapshot()["tunnel_discovery_failures_total"] ?? 0) - failedBefore;
    // Every malformed stream and the silent one; a stream reset before its first byte may never
    // reach the handler; +1: the agent's own handshake towards us (we do not serve discovery).
    expect(failed).toBeGreaterThanOrEqual(invalid + 1 - resets);
    expect(failed).toBeLessThanOrEqual(invalid + 2);
    console.log(`discovery fuzz (live): ${invalid} malformed, ${validNames.size} mutations that were valid CONNECTs, ${failed} counted as failed`);
    // No garbage taught the agent a name for us ("liar" was answered FAILED before any CONNECT).
    const learned = b.tunnel.peers().find((p) => p.peerId === raw.peerId.toString())?.nodeName;
    if (learned !== undefined) expect(validNames.has(learned)).toBe(true);

    // Still a working agent: a proper handshake, and a proxy stream from another agent.
    const ok = await probe(await conn.newStream(DISCOVERY_PROTOCOL), [encodeDiscovery({ type: MsgType.CONNECT, protocol: "MDNS", nodeName: "fuzzer" })]);
    expect(ok).toEqual({ outcome: "SUCCESS", name: "node-b" });
    const a = testTunnel("node-a");
    await a.tunnel.start();
    await a.tunnel.addPeer("node-b", b.tunnel.peerId, b.tunnel.addrs());
    const opened = await a.tunnel.openProxyStream("node-b", { protocol: "tcp", ip: "10.0.0.1", port: 80 });
    expect(opened.stream.status).toBe("open");
    opened.stream.abort(new Error("done"));
  }, 120_000);
});
