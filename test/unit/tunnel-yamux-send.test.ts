// yamux-send.ts: a send on an idle yamux stream goes out as one frame without the queue, and a
// frame for a stream with one plain listener is delivered to it directly. The bytes on the wire must be exactly
// the library's: the same exchange (SYN, small messages, one larger than the send window, close)
// is recorded between two real yamux muxers with the library's send and with ours.
import { expect, test } from "bun:test";
import { yamux } from "@chainsafe/libp2p-yamux";
import type { Stream } from "@libp2p/interface";
import { multiaddrConnectionPair } from "@libp2p/utils";
import { YamuxStream } from "@chainsafe/libp2p-yamux/stream";
import { installYamuxFastSend, queueIsIdle, YAMUX_ORIGINAL_SEND } from "../../src/tunnel/yamux-send.ts";
import { installYamuxHalfWindowUpdates } from "../../src/tunnel/yamux-window.ts";

/** Runs a fixed exchange A -> B; returns every byte A put on the wire and what B received. */
async function exchange(): Promise<{ wire: Uint8Array; received: Uint8Array; queued: number }> {
  const [a, b] = multiaddrConnectionPair();
  const chunks: Uint8Array[] = [];
  b.addEventListener("message", (evt) => chunks.push((evt.data instanceof Uint8Array ? evt.data : evt.data.subarray()).slice()));
  const ma = yamux()().createStreamMuxer(a);
  const mb = yamux()().createStreamMuxer(b);
  const got: Uint8Array[] = [];
  let ended!: () => void;
  const end = new Promise<void>((r) => (ended = r));
  mb.addEventListener("stream", (evt) => {
    const s = evt.detail as Stream;
    s.addEventListener("message", (m) => got.push((m.data instanceof Uint8Array ? m.data : m.data.subarray()).slice()));
    s.addEventListener("remoteCloseWrite", () => ended());
  });
  const stream = await ma.createStream();
  const proto = YamuxStream.prototype as unknown as { send: (d: Uint8Array) => boolean; sendData: (...args: unknown[]) => unknown };
  const send = proto.send;
  // sendData is what the library's queue calls: counts the sends that went through the queue.
  let queued = 0;
  const sendData = proto.sendData;
  (stream as unknown as typeof proto).sendData = function (...args: unknown[]) {
    queued++;
    return sendData.apply(this, args);
  };
  const sizes = [1024, 1, 1024, 4000, 300 * 1024, 1024, 17];
  let n = 0;
  for (const size of sizes) {
    const msg = new Uint8Array(size).map((_, i) => (i + n++) & 0xff);
    if (!send.call(stream, msg)) await new Promise((r) => stream.addEventListener("drain", r, { once: true }));
    await Bun.sleep(1);
  }
  await stream.close();
  await Promise.race([end, Bun.sleep(5000).then(() => Promise.reject(new Error("no FIN")))]);
  await Bun.sleep(10);
  ma.abort(new Error("done"));
  mb.abort(new Error("done"));
  return { wire: Buffer.concat(chunks), received: Buffer.concat(got), queued };
}

test("the direct send puts the library's bytes on the wire (SYN, small frames, a message past the window, FIN)", async () => {
  installYamuxHalfWindowUpdates();
  expect(installYamuxFastSend()).toBe(true);
  expect(installYamuxFastSend()).toBe(true); // idempotent
  const proto = YamuxStream.prototype as unknown as Record<PropertyKey, unknown>;
  const patched = proto.send;
  expect(patched).not.toBe(proto[YAMUX_ORIGINAL_SEND]);
  const ours = await exchange();
  proto.send = proto[YAMUX_ORIGINAL_SEND]; // the library's own, for the reference run
  let theirs;
  try {
    theirs = await exchange();
  } finally {
    proto.send = patched;
  }
  const total = 1024 + 1 + 1024 + 4000 + 300 * 1024 + 1024 + 17;
  expect(ours.received.length).toBe(total);
  expect(Buffer.compare(ours.received, theirs.received)).toBe(0);
  expect(ours.wire.length).toBe(theirs.wire.length);
  expect(Buffer.compare(ours.wire, theirs.wire)).toBe(0);
  // The library queued all seven sends; ours only the one past the window (and what followed it).
  expect(theirs.queued).toBeGreaterThanOrEqual(7);
  expect(ours.queued).toBeLessThanOrEqual(3);
});

test("queueIsIdle: only an idle, writable queue with room and no 'idle' listener sends directly", () => {
  const base = { writeStatus: "writable", writableNeedsDrain: false, sendingData: false, writeBuffer: { byteLength: 0 }, maxMessageSize: 1000, listenerCount: () => 0 };
  expect(queueIsIdle(base, 1000)).toBe(true);
  expect(queueIsIdle(base, 1001)).toBe(false);
  expect(queueIsIdle(base, 0)).toBe(false);
  expect(queueIsIdle({ ...base, maxMessageSize: undefined }, 1 << 20)).toBe(true);
  expect(queueIsIdle({ ...base, writeStatus: "closing" }, 10)).toBe(false);
  expect(queueIsIdle({ ...base, writableNeedsDrain: true }, 10)).toBe(false);
  expect(queueIsIdle({ ...base, sendingData: true }, 10)).toBe(false);
  expect(queueIsIdle({ ...base, writeBuffer: { byteLength: 1 } }, 10)).toBe(false);
  expect(queueIsIdle({ ...base, listenerCount: (t: string) => (t === "idle" ? 1 : 0) }, 10)).toBe(false);
});

/** A muxer pair with one stream A -> B; B's stream is handed to `onStream`. */
async function streamPair(onStream: (s: Stream) => void) {
  const [a, b] = multiaddrConnectionPair();
  const ma = yamux()().createStreamMuxer(a);
  const mb = yamux()().createStreamMuxer(b);
  mb.addEventListener("stream", (evt) => onStream(evt.detail as Stream));
  const stream = await ma.createStream();
  return { stream, done: () => (ma.abort(new Error("done")), mb.abort(new Error("done"))) };
}

test("direct delivery: one listener gets every frame in order, also across a pause, and 'end' after the FIN", async () => {
  installYamuxFastSend();
  const got: number[] = [];
  const types = new Set<string>();
  let direct = 0; // deliveries without an Event object (the fast path)
  let remote!: Stream;
  let ended = false;
  const { stream, done } = await streamPair((s) => {
    remote = s;
    s.addEventListener("message", {
      handleEvent(e: Event & { data: { subarray(): Uint8Array } }) {
        types.add(e.type);
        if (!(e instanceof Event)) direct++;
        for (const byte of e.data.subarray()) got.push(byte);
      },
    } as unknown as EventListener);
    s.addEventListener("end", () => (ended = true));
  });
  const msg = (k: number) => new Uint8Array(100).fill(k);
  for (let k = 0; k < 5; k++) stream.send(msg(k));
  await Bun.sleep(5);
  remote.pause();
  for (let k = 5; k < 10; k++) stream.send(msg(k));
  await Bun.sleep(5);
  expect(got.length).toBe(500); // paused: the rest waits in the read buffer
  remote.resume();
  for (let k = 10; k < 12; k++) stream.send(msg(k));
  await stream.close();
  await Bun.sleep(10);
  expect(got.length).toBe(1200);
  for (let i = 0; i < got.length; i++) if (got[i] !== Math.floor(i / 100)) throw new Error(`byte ${i} is ${got[i]}`);
  expect([...types]).toEqual(["message"]);
  expect(direct).toBeGreaterThanOrEqual(5);
  expect(ended).toBe(true);
  done();
});

test("direct delivery: with two listeners, or one added with options, both still get every byte", async () => {
  installYamuxFastSend();
  const counts = [0, 0, 0];
  const { stream, done } = await streamPair((s) => {
    s.addEventListener("message", (e) => (counts[0]! += e.data.byteLength));
    s.addEventListener("message", (e) => (counts[1]! += e.data.byteLength));
    s.addEventListener("message", (e) => (counts[2]! += e.data.byteLength), { once: true });
  });
  for (let k = 0; k < 4; k++) stream.send(new Uint8Array(64));
  await Bun.sleep(10);
  expect(counts[0]).toBe(256);
  expect(counts[1]).toBe(256);
  expect(counts[2]).toBeGreaterThan(0);
  expect(counts[2]).toBeLessThan(256);
  done();
});
