// The multiplexed UDP framing, without sockets: frames split anywhere across chunks come out
// whole with their flow ids, and every malformed frame is a protocol error that stops the reader
// (the stream is then reset) instead of a crash or a misread.
import { describe, expect, test } from "bun:test";
import {
  closeFrame,
  dataFrame,
  dataPrefix,
  lengthBytes,
  MUX_CLOSE_EVICTED,
  MuxFrameReader,
  openFrame,
  type MuxFrameHandler,
} from "../../src/hotpath/remote/mux-frames.ts";
import { datagramView } from "../../src/hotpath/remote/scratch.ts";

/** A datagram is recorded as its length and a position-weighted checksum (cheap to compare). */
type Ev = ["data", number, string] | ["open", number, string, number] | ["close", number, number];
function sig(buf: Uint8Array, off = 0, len = buf.length): string {
  let sum = 0;
  for (let i = 0; i < len; i++) sum = (sum * 31 + buf[off + i]! + i) % 1_000_000_007;
  return `${len}:${sum}`;
}

function recorder(): { h: MuxFrameHandler; events: Ev[] } {
  const events: Ev[] = [];
  return {
    events,
    h: {
      onData: (flow, buf, off, len) => void events.push(["data", flow, sig(buf, off, len)]),
      onOpen: (flow, ip, port) => void events.push(["open", flow, ip, port]),
      onClose: (flow, reason) => void events.push(["close", flow, reason]),
    },
  };
}

const concat = (parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (seed + i * 7) & 0xff);

const stream = concat([
  openFrame(1, "10.244.2.10", 9001),
  dataFrame(1, bytes(0, 1)),
  dataFrame(1, bytes(1, 2)),
  dataFrame(0xfffffffe, bytes(1400, 3)),
  openFrame(2, "fd00::1:2", 53),
  dataFrame(2, bytes(65535, 4)),
  closeFrame(1, MUX_CLOSE_EVICTED),
  dataFrame(2, bytes(7, 5)),
]);
const expected: Ev[] = [
  ["open", 1, "10.244.2.10", 9001],
  ["data", 1, sig(bytes(0, 1))],
  ["data", 1, sig(bytes(1, 2))],
  ["data", 0xfffffffe, sig(bytes(1400, 3))],
  ["open", 2, "fd00::1:2", 53],
  ["data", 2, sig(bytes(65535, 4))],
  ["close", 1, MUX_CLOSE_EVICTED],
  ["data", 2, sig(bytes(7, 5))],
];

describe("multiplexed UDP frames", () => {
  test("a whole stream in one chunk reads back frame by frame", () => {
    const { h, events } = recorder();
    expect(new MuxFrameReader(h).push(stream)).toBe(true);
    expect(events).toEqual(expected);
  });

  test("split into two chunks at every offset of the first 2,000 bytes and of the last 200", () => {
    const cuts = [...Array(2000).keys(), ...Array.from({ length: 200 }, (_, i) => stream.length - 1 - i)];
    for (const cut of cuts) {
      const { h, events } = recorder();
      const r = new MuxFrameReader(h);
      expect(r.push(stream.subarray(0, cut))).toBe(true);
      expect(r.push(stream.subarray(cut))).toBe(true);
      if (JSON.stringify(events) !== JSON.stringify(expected)) throw new Error(`cut at ${cut} misread`);
    }
  });

  test("fed one byte at a time", () => {
    const { h, events } = recorder();
    const r = new MuxFrameReader(h);
    for (let i = 0; i < stream.length; i++) r.push(stream.subarray(i, i + 1));
    expect(events).toEqual(expected);
  });

  test("the prefix and length pieces the sender uses make the same bytes as a whole frame", () => {
    const d = bytes(300, 9);
    expect(Buffer.from(concat([dataPrefix(77), lengthBytes(300), d])).equals(Buffer.from(dataFrame(77, d)))).toBe(true);
    expect(lengthBytes(300)).toBe(lengthBytes(300)); // shared, not rebuilt
  });

  const bad: [string, Uint8Array, string][] = [
    ["an unknown kind", Uint8Array.of(9, 0, 0, 0, 1, 0, 0), "unknown frame kind 9"],
    ["flow id 0", Uint8Array.of(0, 0, 0, 0, 0, 0, 1, 42), "flow id 0"],
    ["an OPEN too short for a port and an IP", Uint8Array.of(1, 0, 0, 0, 1, 0, 2, 0, 53), "OPEN of 2 bytes"],
    ["an OPEN longer than any IP", concat([Uint8Array.of(1, 0, 0, 0, 1, 0, 48), new Uint8Array(48)]), "OPEN of 48 bytes"],
    ["a CLOSE with two reason bytes", Uint8Array.of(2, 0, 0, 0, 1, 0, 2, 0, 0), "CLOSE of 2 bytes"],
  ];
  for (const [what, frame, error] of bad) {
    test(`${what} stops the reader with a protocol error; nothing after it is read`, () => {
      const { h, events } = recorder();
      const r = new MuxFrameReader(h);
      expect(r.push(concat([dataFrame(5, bytes(3, 1)), frame, dataFrame(5, bytes(3, 2))]))).toBe(false);
      expect(r.error).toBe(error);
      expect(events).toEqual([["data", 5, sig(bytes(3, 1))]]);
      expect(r.push(dataFrame(5, bytes(3, 3)))).toBe(false);
      expect(events.length).toBe(1);
    });
  }

  test("an OPEN whose target is not an IP, or port 0, reaches the handler as an empty target (the flow is refused, the stream lives)", () => {
    const { h, events } = recorder();
    const r = new MuxFrameReader(h);
    expect(r.push(concat([openFrame(3, "evil.example", 53), openFrame(4, "10.0.0.1", 0), openFrame(5, "10.0.0.1", 1)]))).toBe(true);
    expect(events).toEqual([
      ["open", 3, "", 0],
      ["open", 4, "", 0],
      ["open", 5, "10.0.0.1", 1],
    ]);
  });

  test("datagramView hands back the chunk itself when the datagram is all of it, else an exact-length copy", () => {
    const chunk = bytes(100, 1);
    expect(datagramView(chunk, 0, 100)).toBe(chunk);
    const v = datagramView(chunk, 10, 20);
    expect(v.length).toBe(20);
    expect([...v]).toEqual([...chunk.subarray(10, 30)]);
    expect(datagramView(chunk, 50, 20)).toBe(v); // the same view object for the same length
  });
});
