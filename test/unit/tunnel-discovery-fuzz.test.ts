// Fuzz of the discovery header decoder (/libp2p/tunnel-discovery/1.0.0, EdgeMesh's node-name
// handshake), which reads whatever a connected peer sends: 200,000 random and mutated inputs.
// Only TunnelError may come out (MALFORMED_HEADER / HEADER_TOO_LARGE), a decoded message has the
// field types the handler relies on, and what decodes re-encodes to an equal message.
// Deterministic (seeded xorshift).

import { describe, expect, test } from "bun:test";
import { decodeDiscovery, decodeDiscoveryBody, encodeDiscovery, MAX_HEADER_BYTES, MsgType, splitDelimited, TunnelError } from "../../src/tunnel/index.ts";
import { rng } from "../support/rng.ts";

const SEEDS = [
  encodeDiscovery({ type: MsgType.CONNECT, protocol: "MDNS", nodeName: "edge-node-1" }),
  encodeDiscovery({ type: MsgType.SUCCESS, protocol: "DHT", nodeName: "n2" }),
  encodeDiscovery({ type: MsgType.FAILED }),
  encodeDiscovery({ type: MsgType.CONNECT, protocol: "MDNS", nodeName: "x".repeat(300) }),
];

function input(r: (n: number) => number): Uint8Array {
  if (r(4) === 0) {
    const out = new Uint8Array(r(64) === 0 ? r(10_000) : r(80));
    for (let i = 0; i < out.length; i++) out[i] = r(256);
    return out;
  }
  let p = SEEDS[r(SEEDS.length)]!.slice();
  for (let k = 1 + r(6); k > 0; k--) {
    const at = r(p.length + 1);
    switch (r(6)) {
      case 0: if (p.length) p[Math.min(at, p.length - 1)] = r(256); break;
      case 1: if (p.length) p[Math.min(at, p.length - 1)]! ^= 1 << r(8); break;
      case 2: p = p.slice(0, at); break;
      case 3: { const q = new Uint8Array(p.length + 1 + r(20)); q.set(p); for (let j = p.length; j < q.length; j++) q[j] = r(256); p = q; break; }
      case 4: if (p.length) p[Math.min(at, p.length - 1)] = [0x80, 0xff, 0x07, 0x0b, 0x0c, 0x0d, 0xc0][r(7)]!; break; // continuation bits, wire types 3/4/5, bad UTF-8
      default: { const q = new Uint8Array(p.length + 5); q.set([0xff, 0xff, 0xff, 0xff, 0x0f]); q.set(p, 5); p = q; } // a huge length prefix
    }
  }
  return p;
}

describe("discovery header decoder fuzz", () => {
  test("200,000 random and mutated headers: only TunnelError, typed fields, and what decodes re-encodes", () => {
    const r = rng(0xd15c0);
    let decoded = 0;
    const codes = new Map<string, number>();
    for (let n = 0; n < 200_000; n++) {
      const buf = input(r);
      for (const fn of [() => decodeDiscovery(buf), () => decodeDiscoveryBody(buf)]) {
        let m;
        try {
          m = fn();
        } catch (err) {
          if (!(err instanceof TunnelError)) throw new Error(`non-TunnelError ${(err as Error)?.name}: ${(err as Error)?.message} for ${Buffer.from(buf).toString("hex")}`);
          codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
          continue;
        }
        decoded++;
        if (m.type !== undefined && !Number.isInteger(m.type)) throw new Error(`type ${m.type}`);
        if (m.protocol !== undefined && typeof m.protocol !== "string") throw new Error(`protocol ${m.protocol}`);
        if (m.nodeName !== undefined && typeof m.nodeName !== "string") throw new Error(`nodeName ${m.nodeName}`);
        // Re-encoding keeps the known fields (unknown ones are dropped, as EdgeMesh does).
        let again: Uint8Array;
        try {
          again = encodeDiscovery(m);
        } catch (err) {
          // Only a message whose fields grew past the limit (a negative int32 takes 10 bytes) may not re-encode.
          expect((err as TunnelError).code).toBe("HEADER_TOO_LARGE");
          continue;
        }
        expect(decodeDiscovery(again)).toEqual(m);
      }
    }
    console.log(`discovery fuzz: ${decoded} decoded, refusals ${JSON.stringify(Object.fromEntries(codes))}`);
    expect(decoded).toBeGreaterThan(10_000);
    expect(codes.get("MALFORMED_HEADER")).toBeGreaterThan(10_000);
    expect(codes.get("HEADER_TOO_LARGE")).toBeGreaterThan(1000);
  });

  test("the stream splitter waits for more bytes or refuses early; it never reads past what it announced", () => {
    const r = rng(7);
    for (let n = 0; n < 50_000; n++) {
      const buf = input(r);
      let parts;
      try {
        parts = splitDelimited(buf);
      } catch (err) {
        expect(err).toBeInstanceOf(TunnelError);
        continue;
      }
      if (parts === undefined) continue; // more bytes needed
      expect(parts.body.length).toBeLessThanOrEqual(MAX_HEADER_BYTES);
      expect(parts.body.length + parts.rest.length).toBeLessThan(buf.length + 1);
    }
    // A prefix announcing more than the limit is refused before the bytes arrive.
    expect(() => splitDelimited(Uint8Array.of(0x81, 0x40))).toThrow(/announces 8193 bytes/);
  });
});
