// QUIC read sizing (src/tunnel/quic-backpressure.ts): the policy, and the patch still fitting
// the installed @chainsafe/libp2p-quic (it throws if the classes it wraps changed shape).
import { expect, test } from "bun:test";
import { installQuicReadBackpressure, nextReadSize, QUIC_READ_MAX, QUIC_READ_MIN } from "../../src/tunnel/quic-backpressure.ts";

test("a full read quadruples the next one, up to the maximum", () => {
  expect(nextReadSize(QUIC_READ_MIN, QUIC_READ_MIN)).toBe(QUIC_READ_MIN * 4);
  let size = QUIC_READ_MIN;
  for (let i = 0; i < 20; i++) size = nextReadSize(size, size);
  expect(size).toBe(QUIC_READ_MAX);
});

test("a read under an eighth of its size halves the next one, down to the minimum", () => {
  expect(nextReadSize(QUIC_READ_MAX, 1024)).toBe(QUIC_READ_MAX / 2);
  let size = QUIC_READ_MAX;
  for (let i = 0; i < 20; i++) size = nextReadSize(size, 100);
  expect(size).toBe(QUIC_READ_MIN);
});

test("a read between an eighth and full keeps the size", () => {
  expect(nextReadSize(65536, 65536 / 8)).toBe(65536);
  expect(nextReadSize(65536, 65535)).toBe(65536);
});

test("the patch installs on the installed libp2p-quic, once", async () => {
  await installQuicReadBackpressure();
  await installQuicReadBackpressure();
  const entry = import.meta.resolve("@chainsafe/libp2p-quic");
  const { QuicStream } = (await import(new URL("./stream.js", entry).href)) as { QuicStream: { prototype: Record<PropertyKey, unknown> } };
  expect(QuicStream.prototype[Symbol.for("edgemesh.quicReadBackpressure")]).toBe(true);
});
