// The pnet layer XORs sealed Noise messages (SEALED_BUFFERS) in place, once, and everything else
// into a copy: the peer reads the same bytes either way, and a caller's own buffer is never changed.
import { expect, test } from "bun:test";
import type { MessageStream } from "@libp2p/interface";
import { multiaddrConnectionPair } from "@libp2p/utils";
import { allocSealed, SEALED_BUFFERS } from "../../src/tunnel/seal-buffers.ts";
import { pnetProtector } from "../../src/tunnel/pnet.ts";

const MULTISTREAM = new TextEncoder().encode("\x13/multistream/1.0.0\n");

function received(s: MessageStream): { bytes: number[]; wait: (n: number) => Promise<void> } {
  const bytes: number[] = [];
  s.addEventListener("message", (e) => {
    for (const b of e.data instanceof Uint8Array ? [e.data] : e.data) bytes.push(...b);
  });
  const wait = async (n: number) => {
    for (let i = 0; i < 200 && bytes.length < n; i++) await Bun.sleep(5);
  };
  return { bytes, wait };
}

test("sealed buffers are XORed in place once, other buffers are left as they were", async () => {
  const [a, b] = multiaddrConnectionPair();
  const psk = new Uint8Array(32).fill(7);
  const [pa, pb] = await Promise.all([pnetProtector(psk)().protect(a), pnetProtector(psk)().protect(b)]);
  const got = received(pb);
  pa.send(MULTISTREAM); // the first bytes on a protected connection, as libp2p sends them
  const plain = Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff);
  const caller = plain.slice();
  await got.wait(MULTISTREAM.length);
  pa.send(caller);
  await got.wait(MULTISTREAM.length + 5000); // separate writes: a batch mixing both is copied whole
  const sealedBuf = allocSealed(3000);
  const sealed = new Uint8Array(sealedBuf.buffer);
  sealed.set(plain.subarray(0, 3000));
  expect(SEALED_BUFFERS.has(sealed.buffer)).toBe(true);
  pa.send(sealed);
  await got.wait(MULTISTREAM.length + 8000);
  expect(got.bytes.length).toBe(MULTISTREAM.length + 8000);
  expect(Buffer.from(got.bytes.slice(MULTISTREAM.length, MULTISTREAM.length + 5000)).equals(Buffer.from(plain))).toBe(true);
  expect(Buffer.from(got.bytes.slice(MULTISTREAM.length + 5000)).equals(Buffer.from(plain.subarray(0, 3000)))).toBe(true);
  expect(Buffer.from(caller).equals(Buffer.from(plain))).toBe(true); // not ours: untouched
  // Taken by the in-place path, and only once. (Its bytes cannot show it here: the in-memory pair
  // hands the receiver that same buffer, which the receiving pnet XORs back in place.)
  expect(SEALED_BUFFERS.has(sealed.buffer)).toBe(false);
  pa.abort(new Error("done"));
  pb.abort(new Error("done"));
});
