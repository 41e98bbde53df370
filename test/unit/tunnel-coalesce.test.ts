// Write coalescing under yamux: small sends of one event-loop turn reach the layer below as one
// send, large ones at once, in order, and nothing is lost on close.
import { expect, test } from "bun:test";
import type { MultiaddrConnection } from "@libp2p/interface";
import { multiaddrConnectionPair } from "@libp2p/utils";
import { COALESCE_FLUSH_BYTES, CoalescingMessageStream } from "../../src/tunnel/coalesce.ts";

/** Counts what the coalescing layer hands down, and collects what arrives at the far end. */
function setup() {
  const [a, b] = multiaddrConnectionPair();
  const sends: number[] = [];
  const send = a.send.bind(a);
  (a as { send: MultiaddrConnection["send"] }).send = (data) => {
    sends.push(data.byteLength);
    return send(data);
  };
  const c = new CoalescingMessageStream(a);
  const got: number[] = [];
  b.addEventListener("message", (evt) => {
    for (const byte of evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()) got.push(byte);
  });
  return { a, b, c, sends, got };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await Bun.sleep(5);
};

test("100 small sends in one turn go down as one batch, bytes in order", async () => {
  const { c, b, sends, got } = setup();
  for (let i = 0; i < 100; i++) expect(c.send(Uint8Array.of(i, i))).toBe(true);
  expect(sends).toEqual([]); // nothing yet: the batch leaves at the end of the turn
  await until(() => got.length === 200);
  expect(sends).toEqual([200]);
  expect(got).toEqual(Array.from({ length: 100 }, (_, i) => [i, i]).flat());
  c.abort(new Error("done"));
  b.abort(new Error("done"));
});

test("a batch reaching the flush size goes down at once, after what was queued before it", async () => {
  const { c, b, sends, got } = setup();
  c.send(Uint8Array.of(1, 2, 3));
  c.send(new Uint8Array(COALESCE_FLUSH_BYTES).fill(7));
  expect(sends).toEqual([COALESCE_FLUSH_BYTES + 3]);
  await until(() => got.length === COALESCE_FLUSH_BYTES + 3);
  expect(got.slice(0, 4)).toEqual([1, 2, 3, 7]);
  c.abort(new Error("done"));
  b.abort(new Error("done"));
});

test("close() sends the pending batch before closing", async () => {
  const { c, sends, got } = setup();
  c.send(Uint8Array.of(9, 8, 7));
  await c.close();
  await until(() => got.length === 3);
  expect(sends).toEqual([3]);
  expect(got).toEqual([9, 8, 7]);
});

test("data from below is delivered unchanged", async () => {
  const { c, b } = setup();
  const seen: number[] = [];
  c.addEventListener("message", (evt) => {
    for (const byte of evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()) seen.push(byte);
  });
  b.send(Uint8Array.of(4, 5, 6));
  await until(() => seen.length === 3);
  expect(seen).toEqual([4, 5, 6]);
  c.abort(new Error("done"));
  b.abort(new Error("done"));
});
