// Fuzz, in-process, the parsers a connected peer reaches in the tunnel proxy path: the proxy
// header (CONNECT, and the SUCCESS/FAILED answer an opener reads; early data behind a CONNECT)
// and the multiplexed UDP framing. Random bytes and mutations of valid input: a malformed header
// is a TunnelError and nothing else (no TypeError, RangeError or hang), a valid one decodes with
// sane field types, and the frame reader either reads on or stops with a protocol error, handing
// out only values that are in range. Seeds are fixed, so a failure replays.
import { describe, expect, test } from "bun:test";
import { streamPair } from "@libp2p/utils";
import { closeFrame, dataFrame, MuxFrameReader, openFrame } from "../../src/hotpath/remote/mux-frames.ts";
import { decodeProxy, decodeProxyBody, encodeProxy, MAX_HEADER_BYTES, MsgType, splitDelimited, TunnelError } from "../../src/tunnel/index.ts";
import { readHeader } from "../../src/tunnel/header-io.ts";
import { rng } from "../support/rng.ts";

function mutate(r: (n: number) => number, base: Uint8Array): Uint8Array {
  const b = Array.from(base);
  const edits = 1 + r(6);
  for (let e = 0; e < edits; e++) {
    const op = r(5);
    const at = r(b.length + 1);
    if (op === 0 && b.length > 0) b[Math.min(at, b.length - 1)] = r(256); // flip a byte
    else if (op === 1) b.splice(at, 0, r(256)); // insert
    else if (op === 2 && b.length > 0) b.splice(Math.min(at, b.length - 1), 1 + r(4)); // delete
    else if (op === 3) b.splice(at, 0, ...Array.from({ length: 1 + r(12) }, () => (r(2) ? 0xff : 0x80))); // varint bait
    else b.length = Math.min(b.length, at); // truncate
  }
  return Uint8Array.from(b);
}

const VALID_HEADERS = [
  encodeProxy({ type: MsgType.CONNECT, protocol: "tcp", nodeName: "node2", ip: "10.244.2.10", port: 8080, features: 2 }),
  encodeProxy({ type: MsgType.CONNECT, protocol: "udp", nodeName: "edge-node-01", ip: "10.244.3.7", port: 53, features: 5 }),
  encodeProxy({ type: MsgType.SUCCESS, acceptedFeatures: 7 }),
  encodeProxy({ type: MsgType.FAILED }),
  Buffer.from("1e080012037463701a056e6f646532220b31302e3234342e322e313028903f", "hex"), // EdgeMesh's own CONNECT
];

function checkDecoded(m: ReturnType<typeof decodeProxyBody>): void {
  for (const k of ["type", "port", "features", "acceptedFeatures"] as const) {
    if (m[k] !== undefined && !Number.isInteger(m[k])) throw new Error(`${k} is ${m[k]}`);
  }
  for (const k of ["protocol", "nodeName", "ip"] as const) {
    if (m[k] !== undefined && typeof m[k] !== "string") throw new Error(`${k} is ${typeof m[k]}`);
  }
}

describe("proxy header fuzz", () => {
  test("60,000 random and mutated headers: decoded with sane types, or refused with a TunnelError only", () => {
    const r = rng(0x5eed11);
    let decoded = 0;
    let refused = 0;
    for (let i = 0; i < 60_000; i++) {
      const input =
        i % 3 === 0 ? Uint8Array.from({ length: r(64) }, () => r(256)) : mutate(r, VALID_HEADERS[r(VALID_HEADERS.length)]!);
      try {
        const parts = splitDelimited(input);
        if (parts !== undefined) {
          expect(parts.body.length).toBeLessThanOrEqual(MAX_HEADER_BYTES);
          checkDecoded(decodeProxyBody(parts.body));
        }
        checkDecoded(decodeProxy(input));
        decoded++;
      } catch (err) {
        if (!(err instanceof TunnelError)) throw new Error(`input ${Buffer.from(input).toString("hex")} threw ${(err as Error).name}: ${(err as Error).message}`);
        refused++;
      }
    }
    expect(decoded).toBeGreaterThan(100);
    expect(refused).toBeGreaterThan(10_000);
  });

  test("a length prefix past the limit is refused before its body arrives, however the varint is spelled", () => {
    for (const prefix of [[0x81, 0x20], [0xff, 0xff, 0xff, 0xff, 0x0f], [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]]) {
      expect(() => splitDelimited(Uint8Array.from(prefix))).toThrow(TunnelError);
    }
  });

  test("readHeader over a stream: 300 mutated CONNECTs with early data behind, cut into random chunks, resolve or reject (never hang), and a header that decodes leaves every payload byte", async () => {
    const r = rng(0xea71);
    const payload = Uint8Array.from({ length: 3000 }, (_, i) => (i * 13) & 0xff);
    let ok = 0;
    let rejected = 0;
    for (let i = 0; i < 300; i++) {
      const header = i % 4 === 0 ? VALID_HEADERS[0]! : mutate(r, VALID_HEADERS[r(2)]!);
      const wire = Buffer.concat([header, payload]);
      const [out, inb] = await streamPair();
      const read = readHeader(inb, decodeProxyBody, 2_000).then(
        (m) => ({ m }),
        (err: unknown) => ({ err }),
      );
      for (let off = 0; off < wire.length; ) {
        const n = 1 + r(700);
        out.send(wire.subarray(off, off + n));
        off += n;
      }
      out.close().catch(() => {});
      const res = await read;
      if ("err" in res) {
        if (!(res.err instanceof TunnelError)) throw new Error(`rejected with ${(res.err as Error).name}: ${(res.err as Error).message}`);
        rejected++;
      } else {
        checkDecoded(res.m);
        // The bytes after the header wait in the stream for the next listener.
        const parts = splitDelimited(wire)!;
        const rest = await new Promise<number>((resolve) => {
          let got = 0;
          const done = setTimeout(() => resolve(got), 200);
          inb.addEventListener("message", (e) => {
            got += e.data.byteLength;
            if (got >= parts.rest.length) {
              clearTimeout(done);
              resolve(got);
            }
          });
        });
        expect(rest).toBe(parts.rest.length);
        ok++;
      }
      out.abort(new Error("done"));
      inb.abort(new Error("done"));
    }
    expect(ok).toBeGreaterThan(50);
    expect(rejected).toBeGreaterThan(10);
  }, 60_000);
});

describe("multiplexed UDP framing fuzz", () => {
  const valid = Buffer.concat([
    openFrame(1, "10.244.2.10", 9001),
    dataFrame(1, Uint8Array.from({ length: 300 }, (_, i) => i & 0xff)),
    openFrame(2, "fd00::2", 53),
    dataFrame(2, new Uint8Array(40)),
    closeFrame(1, 0),
    dataFrame(2, new Uint8Array(2)),
  ]);

  test("20,000 random and mutated byte streams in random chunks: only in-range values reach the handler, or the reader stops", () => {
    const r = rng(0xf4a3e);
    let stopped = 0;
    let events = 0;
    for (let i = 0; i < 20_000; i++) {
      const input = i % 4 === 0 ? Uint8Array.from({ length: r(200) }, () => r(256)) : mutate(r, valid);
      const reader = new MuxFrameReader({
        onData(flow, buf, off, len) {
          if (flow === 0 || flow > 0xffffffff || off < 0 || len < 0 || len > 65535 || off + len > buf.length) throw new Error(`bad DATA ${flow} ${off} ${len} of ${buf.length}`);
          events++;
        },
        onOpen(flow, ip, port) {
          if (flow === 0 || port < 0 || port > 65535 || (ip !== "" && !/^[0-9a-fA-F.:]{1,45}$/.test(ip)) || (ip === "") !== (port === 0)) throw new Error(`bad OPEN ${flow} ${ip} ${port}`);
          events++;
        },
        onClose(flow, reason) {
          if (flow === 0 || reason < 0 || reason > 255) throw new Error(`bad CLOSE ${flow} ${reason}`);
          events++;
        },
      });
      let alive = true;
      for (let off = 0; off < input.length && alive; ) {
        const n = 1 + r(64);
        alive = reader.push(input.subarray(off, off + n));
        off += n;
      }
      if (!alive) {
        expect(reader.error).not.toBeNull();
        expect(reader.push(valid)).toBe(false); // a stopped reader stays stopped
        stopped++;
      }
    }
    expect(stopped).toBeGreaterThan(2000);
    expect(events).toBeGreaterThan(10_000);
  });
});
