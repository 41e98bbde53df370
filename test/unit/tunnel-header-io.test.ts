// Payload right behind a CONNECT (in the same write, or split anywhere) survives our header read:
// readHeader puts the bytes after the header back into the stream for the next listener. This is
// what lets an opener send a client's first bytes with CONNECT to one of our agents. (EdgeMesh's
// agent reads the header through a bufio.Reader and then copies from the raw stream, so bytes
// that arrived with the header are lost there: early payload must be agreed per peer.)
import { expect, test } from "bun:test";
import type { Stream } from "@libp2p/interface";
import { streamPair } from "@libp2p/utils";
import { decodeProxyBody, encodeProxy, MsgType } from "../../src/tunnel/codec.ts";
import { readHeader } from "../../src/tunnel/header-io.ts";

function collect(s: Stream, n: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Uint8Array[] = [];
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`only ${got} of ${n} bytes`)), 5_000);
    s.addEventListener("message", (e) => {
      for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) {
        parts.push(b.slice());
        got += b.length;
      }
      if (got >= n) {
        clearTimeout(timer);
        resolve(Buffer.concat(parts));
      }
    });
  });
}

const connect = encodeProxy({ type: MsgType.CONNECT, protocol: "tcp", nodeName: "node-b", ip: "10.0.0.7", port: 8080 });
const payload = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: svc\r\n\r\n".repeat(50));

for (const cut of [0, 1, connect.length - 1, connect.length, connect.length + 1, connect.length + 700]) {
  test(`CONNECT and ${payload.length} payload bytes split at ${cut}: the header decodes and every payload byte follows`, async () => {
    const [out, inb] = await streamPair();
    const wire = Buffer.concat([connect, payload]);
    out.send(wire.subarray(0, cut));
    if (cut < wire.length) setTimeout(() => out.send(wire.subarray(cut)), 5);
    const header = await readHeader(inb, decodeProxyBody, 5_000);
    expect(header).toMatchObject({ type: MsgType.CONNECT, protocol: "tcp", nodeName: "node-b", ip: "10.0.0.7", port: 8080 });
    const rest = await collect(inb, payload.length);
    expect(Buffer.from(rest).equals(Buffer.from(payload))).toBe(true);
    out.abort(new Error("done"));
    inb.abort(new Error("done"));
  });
}
