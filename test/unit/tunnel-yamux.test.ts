// yamux window updates: the library answers every data frame with one; with our half-window
// threshold (as go-yamux) a stream sends one only per half window consumed. Frames are counted
// on the wire between two real yamux muxers over an in-memory connection pair.
import { expect, test } from "bun:test";
import { yamux } from "@chainsafe/libp2p-yamux";
import type { MultiaddrConnection, Stream } from "@libp2p/interface";
import { multiaddrConnectionPair } from "@libp2p/utils";
import { YamuxStream } from "@chainsafe/libp2p-yamux/stream";
import { installYamuxHalfWindowUpdates, YAMUX_ORIGINAL_SEND_WINDOW_UPDATE } from "../../src/tunnel/yamux-window.ts";

const HEADER = 12;
const TYPE_WINDOW_UPDATE = 1;
const FLAG_RST = 8;

/** Counts yamux frames arriving on `conn` (what the other side sent), by parsing headers. */
function frameCounter(conn: MultiaddrConnection) {
  const counts = { data: 0, windowUpdates: 0, windowBytes: 0, resets: 0 };
  let buf = new Uint8Array(0);
  conn.addEventListener("message", (evt) => {
    const chunk = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
    const next = new Uint8Array(buf.length + chunk.length);
    next.set(buf);
    next.set(chunk, buf.length);
    buf = next;
    for (;;) {
      if (buf.length < HEADER) break;
      const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
      const type = view.getUint8(1);
      const flags = view.getUint16(2);
      const length = view.getUint32(8);
      const size = type === 0 ? HEADER + length : HEADER;
      if (buf.length < size) break;
      if (type === 0) counts.data++;
      if (type === TYPE_WINDOW_UPDATE && flags === 0) {
        counts.windowUpdates++;
        counts.windowBytes += length;
      }
      if (flags & FLAG_RST) counts.resets++;
      buf = buf.subarray(size);
    }
  });
  return counts;
}

/** Opens a stream A -> B, sends `count` messages of `size` bytes, resolves once B has them all. */
async function sendAndCount(count: number, size: number) {
  const [a, b] = multiaddrConnectionPair();
  const fromB = frameCounter(a);
  const ma = yamux()().createStreamMuxer(a);
  const mb = yamux()().createStreamMuxer(b);
  let received = 0;
  const all = new Promise<void>((resolve) => {
    mb.addEventListener("stream", (evt) => {
      const s = evt.detail as Stream;
      s.addEventListener("message", (m) => {
        received += m.data.byteLength;
        if (received === count * size) resolve();
      });
    });
  });
  const stream = await ma.createStream();
  const msg = new Uint8Array(size);
  for (let i = 0; i < count; i++) {
    if (!stream.send(msg)) await new Promise((r) => stream.addEventListener("drain", r, { once: true }));
    if (i % 16 === 15) await Bun.sleep(0); // let frames cross as in a real exchange
  }
  await Promise.race([all, Bun.sleep(10_000).then(() => Promise.reject(new Error(`only ${received} of ${count * size} bytes arrived`)))]);
  await Bun.sleep(10);
  ma.abort(new Error("done"));
  mb.abort(new Error("done"));
  return { received, fromB };
}

test("library check: unpatched yamux sends a window update per data frame (else drop yamux-window.ts)", async () => {
  installYamuxHalfWindowUpdates();
  const proto = YamuxStream.prototype as unknown as Record<PropertyKey, unknown>;
  const patched = proto.sendWindowUpdate;
  proto.sendWindowUpdate = proto[YAMUX_ORIGINAL_SEND_WINDOW_UPDATE]; // the library's own, for this test
  try {
    const { received, fromB } = await sendAndCount(100, 1024);
    expect(received).toBe(100 * 1024);
    expect(fromB.windowUpdates).toBeGreaterThanOrEqual(90);
  } finally {
    proto.sendWindowUpdate = patched;
  }
});

test("patched: one window update per half window consumed, nothing lost", async () => {
  expect(installYamuxHalfWindowUpdates()).toBe(true);
  expect(installYamuxHalfWindowUpdates()).toBe(true); // idempotent
  const small = await sendAndCount(100, 1024); // 100 KiB < half of the 256 KiB initial window
  expect(small.received).toBe(100 * 1024);
  expect(small.fromB.windowUpdates).toBe(0);
  expect(small.fromB.resets).toBe(0);
  // 4 MiB: the sender must get credit back to finish at all, in few updates.
  const bulk = await sendAndCount(256, 16 * 1024);
  expect(bulk.received).toBe(4 * 1024 * 1024);
  expect(bulk.fromB.windowUpdates).toBeGreaterThanOrEqual(1);
  expect(bulk.fromB.windowUpdates).toBeLessThanOrEqual(40);
  expect(bulk.fromB.windowBytes).toBeGreaterThanOrEqual(4 * 1024 * 1024 - 256 * 1024);
  expect(bulk.fromB.resets).toBe(0);
});
