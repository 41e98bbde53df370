// yamux-frames.ts: frames decoded in place and streams found by id must deliver exactly what the
// library's decoder delivers, and answer with the same bytes. One exchange (three streams
// opened with SYN, small and large messages interleaved, window updates, FINs) is recorded on
// the wire with the library's code; the recording is then fed to a fresh muxer in many
// chunkings (as sent, 3, 5, 13, 100, 4096 and 65536 bytes) with the library's onData and with
// ours, and each stream's bytes and everything the muxer sends back are compared.
import { expect, test } from "bun:test";
import { yamux } from "@chainsafe/libp2p-yamux";
import type { Stream } from "@libp2p/interface";
import { multiaddrConnectionPair } from "@libp2p/utils";
import { installYamuxFastSend } from "../../src/tunnel/yamux-send.ts";
import { installYamuxHalfWindowUpdates } from "../../src/tunnel/yamux-window.ts";
import { installYamuxFrames, YAMUX_ORIGINAL_ON_DATA, YAMUX_ORIGINAL_SEND_FRAME } from "../../src/tunnel/yamux-frames.ts";

const bytesOf = (d: Uint8Array | { subarray(): Uint8Array }) => (d instanceof Uint8Array ? d : d.subarray()).slice();
const mux = (c: Parameters<ReturnType<ReturnType<typeof yamux>>["createStreamMuxer"]>[0]) => yamux({ enableKeepAlive: false })().createStreamMuxer(c);

/** The library's onData is on the prototype under YAMUX_ORIGINAL_ON_DATA once installed. */
function protoOf(m: object): Record<PropertyKey, unknown> {
  return Object.getPrototypeOf(m) as Record<PropertyKey, unknown>;
}

/** A -> B over a real pair: what A put on the wire, chunk by chunk as sent. */
async function record(): Promise<Uint8Array[]> {
  const [a, b] = multiaddrConnectionPair();
  const wire: Uint8Array[] = [];
  b.addEventListener("message", (evt) => wire.push(bytesOf(evt.data)));
  const ma = mux(a);
  const mb = mux(b);
  let ends = 0;
  mb.addEventListener("stream", (evt) => {
    const s = evt.detail as Stream;
    s.addEventListener("message", () => {});
    s.addEventListener("remoteCloseWrite", () => ends++);
  });
  const streams = [await ma.createStream(), await ma.createStream(), await ma.createStream()];
  const sizes = [1024, 1, 1024, 4000, 300 * 1024, 1024, 17, 2048];
  let n = 0;
  for (const size of sizes) {
    for (const s of streams) {
      const msg = new Uint8Array(size).map((_, i) => (i + n++) & 0xff);
      if (!s.send(msg)) await new Promise((r) => s.addEventListener("drain", r, { once: true }));
    }
    await Bun.sleep(1);
  }
  for (const s of streams) await s.close();
  for (let i = 0; i < 100 && ends < 3; i++) await Bun.sleep(5);
  expect(ends).toBe(3);
  ma.abort(new Error("done"));
  mb.abort(new Error("done"));
  return wire;
}

/** Feeds `chunks` to a fresh muxer; returns each stream's bytes and what the muxer sent back. */
async function replay(chunks: Uint8Array[]) {
  const [a, b] = multiaddrConnectionPair();
  const back: Uint8Array[] = [];
  a.addEventListener("message", (evt) => back.push(bytesOf(evt.data)));
  const mb = mux(b);
  const got = new Map<string, Uint8Array[]>();
  let views = 0; // deliveries of a plain Uint8Array (the in-place decoder's; the library's are lists)
  mb.addEventListener("stream", (evt) => {
    const s = evt.detail as Stream;
    const mine: Uint8Array[] = [];
    got.set(s.id, mine);
    s.addEventListener("message", (m) => {
      if (m.data instanceof Uint8Array) views++;
      mine.push(bytesOf(m.data));
    });
  });
  for (const c of chunks) a.send(c);
  await Bun.sleep(20);
  const streams = [...got.entries()].sort().map(([id, parts]) => [id, Buffer.concat(parts)] as const);
  const answered = Buffer.concat(back); // before the abort's resets, which arrive when they will
  mb.abort(new Error("done"));
  return { streams, back: answered, views };
}

function rechunk(wire: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < wire.length; i += size) out.push(wire.slice(i, i + size));
  return out;
}

test("in-place decoding delivers what the library's decoder delivers, in every chunking", async () => {
  // As in the agent (host.ts): window updates at half a window, direct send and delivery.
  installYamuxHalfWindowUpdates();
  installYamuxFastSend();
  expect(installYamuxFrames()).toBe(true);
  expect(installYamuxFrames()).toBe(true); // idempotent
  const [x, y] = multiaddrConnectionPair();
  const proto = protoOf(mux(x));
  x.abort(new Error("done"));
  y.abort(new Error("done"));
  const patched = proto.onData;
  const original = proto[YAMUX_ORIGINAL_ON_DATA];
  expect(typeof original).toBe("function");
  expect(patched).not.toBe(original);

  proto.onData = original; // the recording and the references use the library's decoder
  let wire: Uint8Array[];
  const chunkings: Uint8Array[][] = [];
  const theirs = [];
  try {
    wire = await record();
    const whole = Buffer.concat(wire);
    expect(whole.length).toBeGreaterThan(3 * 316338);
    chunkings.push(wire, ...[3, 5, 13, 100, 4096, 65536].map((k) => rechunk(whole, k)));
    for (const c of chunkings) theirs.push(await replay(c));
  } finally {
    proto.onData = patched;
  }
  let views = 0;
  for (let i = 0; i < chunkings.length; i++) {
    const ours = await replay(chunkings[i]!);
    views += ours.views;
    expect(ours.streams.length).toBe(3);
    expect(ours.streams.map(([id, b]) => [id, b.length])).toEqual(theirs[i]!.streams.map(([id, b]) => [id, b.length]));
    for (let k = 0; k < 3; k++) expect(Buffer.compare(ours.streams[k]![1], theirs[i]!.streams[k]![1])).toBe(0);
    expect(ours.back.length).toBeGreaterThan(0); // ACKs and window updates
    expect(Buffer.compare(ours.back, theirs[i]!.back)).toBe(0);
  }
  expect(views).toBeGreaterThan(20); // the in-place path did the work, not only the fallback
});

test("the untraced sendFrame puts the library's bytes on the wire", async () => {
  installYamuxFrames();
  const [x, y] = multiaddrConnectionPair();
  const proto = protoOf(mux(x)) as Record<PropertyKey, unknown> & { sendFrame: unknown };
  x.abort(new Error("done"));
  y.abort(new Error("done"));
  const frames = async () => {
    const [a, b] = multiaddrConnectionPair();
    const wire: Uint8Array[] = [];
    b.addEventListener("message", (evt) => wire.push(bytesOf(evt.data)));
    const m = mux(a) as unknown as { sendFrame(h: object, d?: Uint8Array): boolean; abort(e: Error): void };
    m.sendFrame({ type: 0, flag: 1, streamID: 1, length: 3 }, new Uint8Array([1, 2, 3]));
    m.sendFrame({ type: 1, flag: 2, streamID: 0x01020304, length: 0xfffffff0 });
    m.sendFrame({ type: 2, flag: 1, streamID: 0, length: 7 });
    m.sendFrame({ type: 0, flag: 0, streamID: 5, length: 0 }, new Uint8Array(0));
    m.sendFrame({ type: 0, flag: 4, streamID: 0x80000001, length: 1024 }, new Uint8Array(1024).fill(9));
    await Bun.sleep(5);
    m.abort(new Error("done"));
    return Buffer.concat(wire);
  };
  const ours = await frames();
  const patched = proto.sendFrame;
  expect(patched).not.toBe(proto[YAMUX_ORIGINAL_SEND_FRAME]);
  proto.sendFrame = proto[YAMUX_ORIGINAL_SEND_FRAME];
  let theirs;
  try {
    theirs = await frames();
  } finally {
    proto.sendFrame = patched;
  }
  expect(ours.length).toBe(6 * 12 + 3 + 1024); // five frames and the GoAway of the abort
  expect(Buffer.compare(ours, theirs)).toBe(0);
  expect([...ours.subarray(0, 27)]).toEqual([0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3, 1, 2, 3, 0, 1, 0, 2, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xf0]);
});

/** One yamux frame: version 0, type (0 data, 1 window update), flags, stream id, length or payload. */
function frame(type: number, flag: number, id: number, payload: Uint8Array | number = 0): Uint8Array {
  const body = typeof payload === "number" ? new Uint8Array(0) : payload;
  const length = typeof payload === "number" ? payload : payload.length;
  const f = new Uint8Array(12 + body.length);
  const v = new DataView(f.buffer);
  f[1] = type;
  v.setUint16(2, flag);
  v.setUint32(4, id);
  v.setUint32(8, length);
  f.set(body, 12);
  return f;
}
const [DATA, WINDOW] = [0, 1];
const [SYN, FIN, RST] = [1, 4, 8];
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const join = (...fs: Uint8Array[]) => new Uint8Array(Buffer.concat(fs));

/**
 * Feeds `chunks` to a fresh muxer, then ends its connection; returns what each stream saw (by id
 * and instance), what the muxer sent back, the streams it still lists and the size of our id map.
 */
async function closePaths(chunks: Uint8Array[], abortOnFirstMessage: number) {
  const [a, b] = multiaddrConnectionPair();
  const back: Uint8Array[] = [];
  a.addEventListener("message", (evt) => back.push(bytesOf(evt.data)));
  const mb = mux(b);
  const seen = new Map<string, string[]>();
  const instances = new Map<string, number>();
  mb.addEventListener("stream", (evt) => {
    const s = evt.detail as Stream;
    const n = (instances.get(s.id) ?? 0) + 1;
    instances.set(s.id, n);
    const log: string[] = [];
    seen.set(`${s.id}#${n}`, log);
    s.addEventListener("message", (m) => {
      const d = bytesOf(m.data);
      log.push(`message ${d.length}x${d[0]}`);
      if (Number(s.id) === abortOnFirstMessage) s.abort(new Error("local abort"));
    });
    for (const type of ["remoteCloseWrite", "end", "close"] as const) s.addEventListener(type, () => log.push(`${type} ${s.status}`));
  });
  for (const c of chunks) {
    a.send(c);
    await Bun.sleep(2);
  }
  await Bun.sleep(20);
  const answered = Buffer.concat(back);
  b.abort(new Error("transport gone")); // every stream still open must close with it
  await Bun.sleep(5);
  const m = mb as unknown as Record<PropertyKey, unknown> & { streams: unknown[] };
  const byId = Object.getOwnPropertySymbols(m).find((k) => k.description === "edgemesh.yamuxStreamsById");
  const map = byId === undefined ? undefined : (m[byId] as Map<number, unknown>);
  return { seen: [...seen.entries()].sort(), back: answered, listed: m.streams.length, mapped: map?.size };
}

test("FIN and RST in a chunk with data, frames for closed or reused ids, and the connection's end: as the library", async () => {
  installYamuxHalfWindowUpdates();
  installYamuxFastSend();
  installYamuxFrames();
  const chunks = [
    // Stream 1: data, FIN, then a stray data frame after the FIN, all in one chunk.
    join(frame(WINDOW, SYN, 1), frame(DATA, 0, 1, bytes(100, 1)), frame(WINDOW, FIN, 1), frame(DATA, 0, 1, bytes(5, 2))),
    // Stream 3: data, RST, then data and a window update for the reset stream, one chunk.
    join(frame(WINDOW, SYN, 3), frame(DATA, 0, 3, bytes(50, 3)), frame(WINDOW, RST, 3), frame(DATA, 0, 3, bytes(7, 4)), frame(WINDOW, 0, 3, 1000)),
    // Stream 5: aborted here on its first message; its next frame, in the same chunk, finds no stream.
    join(frame(DATA, SYN, 5, bytes(20, 5)), frame(DATA, 0, 5, bytes(30, 6)), frame(WINDOW, 0, 5, 4096)),
    // Id 3 opened again after its reset: its data must reach the new stream, not the closed one.
    join(frame(WINDOW, SYN, 3), frame(DATA, 0, 3, bytes(9, 7))),
    // Stream 7 opened and closed by one frame; streams 9 and 11 stay open until the connection ends,
    // 11 with a FIN split from its data over two chunks.
    join(frame(DATA, SYN | FIN, 7, bytes(12, 8)), frame(WINDOW, SYN, 9), frame(DATA, 0, 9, bytes(4, 9)), frame(WINDOW, SYN, 11), frame(DATA, 0, 11, bytes(6, 10)).subarray(0, 15)),
    join(frame(DATA, 0, 11, bytes(6, 10)).subarray(15), frame(DATA, 0, 9, bytes(3, 11)), frame(WINDOW, 0, 11, 512)),
  ];
  const [x, y] = multiaddrConnectionPair();
  const proto = protoOf(mux(x));
  x.abort(new Error("done"));
  y.abort(new Error("done"));
  const patched = proto.onData;
  proto.onData = proto[YAMUX_ORIGINAL_ON_DATA];
  let theirs;
  try {
    theirs = await closePaths(chunks, 5);
  } finally {
    proto.onData = patched;
  }
  const ours = await closePaths(chunks, 5);
  expect(theirs.mapped).toBeUndefined(); // the library's decoder: no map
  expect(ours.seen).toEqual(theirs.seen);
  expect(Buffer.compare(ours.back, theirs.back)).toBe(0);
  // The reused id 3 got its bytes on the new stream; the reset one saw nothing after its RST.
  expect(ours.seen.find(([k]) => k === "3#2")?.[1][0]).toBe("message 9x7");
  expect(ours.seen.find(([k]) => k === "3#1")?.[1]).not.toContain("message 7x4");
  // Every stream closed with the connection, and none is left in the library's list or our map.
  for (const [, log] of ours.seen) expect(log.some((e) => e.startsWith("close"))).toBe(true);
  expect(ours.listed).toBe(0);
  expect(theirs.listed).toBe(0);
  expect(ours.mapped).toBe(0);
});
