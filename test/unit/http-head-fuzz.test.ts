// Fuzz of the request-head reader used for CONSISTENT_HASH_HEADER (src/hotpath/lb/http-head.ts),
// which sees whatever a pod sends: 60,000 random and mutated heads, each fed in random chunkings
// the way the splice feeds it. The incremental search must agree with a search over the joined
// bytes at every step, the header reader must never throw, and its value is one trimmed line.
// Deterministic (seeded xorshift), so a failure replays from its seed.

import { describe, expect, test } from "bun:test";
import { headEnd, headEndAfterAppend, headerValue } from "../../src/hotpath/lb/http-head.ts";
import { rng } from "../support/rng.ts";

const enc = (t: string) => new Uint8Array(Buffer.from(t, "latin1"));
const SEEDS = [
  "GET / HTTP/1.1\r\nHost: web\r\nX-User: alice\r\n\r\n",
  "POST /api HTTP/1.1\r\nhost: web\r\nx-user:bob\r\ncontent-length: 3\r\n\r\nabc",
  "GET / HTTP/1.0\nX-USER:   carol  \n\n",
  "GET / HTTP/1.1\r\nX-Other: 1\r\nx-user: first\r\nx-user: second\r\n\r\n",
  "GET / HTTP/1.1\r\nX-User: folded\r\n continued\r\n\r\n",
  "GET / HTTP/1.1\r\nX-User : spaced\r\n\r\n",
  "GET /x:y HTTP/1.1\r\n: empty-name\r\nX-User\r\n\r\n",
  "\r\n\r\n",
  "\n\r\n",
];
const NASTY = ["\r", "\n", "\r\n", "\n\n", "\r\n\r\n", ":", " ", "\t", "\0", "\xff", "x-user:", "X-User: z", "\x85", "\u00a0"];

function mutate(r: (n: number) => number): Uint8Array {
  if (r(5) === 0) {
    const out = new Uint8Array(r(3000));
    for (let i = 0; i < out.length; i++) out[i] = r(4) === 0 ? [10, 13, 58, 32][r(4)]! : r(256);
    return out;
  }
  let t = SEEDS[r(SEEDS.length)]!;
  for (let k = 1 + r(6); k > 0; k--) {
    const at = r(t.length + 1);
    switch (r(4)) {
      case 0: t = t.slice(0, at) + NASTY[r(NASTY.length)] + t.slice(at); break;
      case 1: t = t.slice(0, at) + t.slice(at + 1 + r(4)); break;
      case 2: t = t.slice(0, at) + "a".repeat(r(2000)) + t.slice(at); break;
      default: t = t.slice(0, at);
    }
  }
  return enc(t);
}

/** Random split points: 1-byte dribbles, a few big pieces, or one piece. */
function chunk(buf: Uint8Array, r: (n: number) => number): Uint8Array[] {
  const out: Uint8Array[] = [];
  const mode = r(3);
  for (let i = 0; i < buf.length; ) {
    const n = mode === 0 ? 1 : mode === 1 ? 1 + r(16) : buf.length;
    out.push(buf.slice(i, i + n));
    i += n;
  }
  return out;
}

describe("HTTP head reader fuzz", () => {
  test("60,000 random and mutated heads in random chunkings: the incremental search agrees with the whole-buffer search at every step", () => {
    const r = rng(0x5eed);
    let found = 0;
    for (let n = 0; n < 60_000; n++) {
      const buf = mutate(r);
      const whole = headEnd(buf, buf.length);
      // The splice's way: append a chunk, search what it can complete, join every 64 chunks.
      let chunks: Uint8Array[] = [];
      let total = 0;
      let got = -1;
      for (const c of chunk(buf, r)) {
        chunks.push(c);
        total += c.length;
        got = headEndAfterAppend(chunks, total);
        if (got >= 0) break;
        if (chunks.length > 64) {
          const joined = new Uint8Array(total);
          let off = 0;
          for (const x of chunks) {
            joined.set(x, off);
            off += x.length;
          }
          chunks = [joined];
        }
      }
      if (got !== whole) throw new Error(`mismatch for ${JSON.stringify(Buffer.from(buf).toString("latin1").slice(0, 200))}: ${got} vs ${whole}`);
      if (whole >= 0) {
        found++;
        const v = headerValue(buf, whole, "x-user");
        if (typeof v !== "string" || /[\r\n]/.test(v) || v !== v.trim()) throw new Error(`value ${JSON.stringify(v)} is not one trimmed line`);
      }
      // The reader takes any end, even one past the buffer or before the first line.
      headerValue(buf, r(buf.length + 10), "x-user");
    }
    expect(found).toBeGreaterThan(10_000); // the mutations keep many heads complete
  }, 60_000); // CPU-bound: seconds on a loaded 2-core machine, not a timing claim

  test("what earlier chunks hold is never searched again (a head dribbled a byte per packet costs linear time)", () => {
    // Earlier chunks throw when read anywhere but their last 2 bytes.
    const guarded = (bytes: Uint8Array): Uint8Array =>
      new Proxy(bytes, {
        get(target, prop, receiver) {
          if (typeof prop === "string" && /^\d+$/.test(prop) && Number(prop) < target.length - 2) throw new Error(`old byte ${prop} read again`);
          const v = Reflect.get(target, prop, target);
          return typeof v === "function" ? v.bind(target) : v;
        },
      }) as Uint8Array;
    const head = enc("GET / HTTP/1.1\r\nHost: a\r\nX-User: dribble\r\n\r\n");
    const chunks: Uint8Array[] = [];
    let end = -1;
    for (let i = 0; i < head.length && end < 0; i += 3) {
      if (chunks.length > 0) chunks[chunks.length - 1] = guarded(chunks[chunks.length - 1]!);
      chunks.push(head.slice(i, i + 3));
      end = headEndAfterAppend(chunks, Math.min(i + 3, head.length));
    }
    expect(end).toBe(head.length);
    expect(headerValue(head, end, "x-user")).toBe("dribble");
  });

  test("the header is found whatever its case, first occurrence wins, absent reads as empty", () => {
    const v = (t: string, name = "x-user") => headerValue(enc(t), headEnd(enc(t), t.length), name);
    expect(v("GET / HTTP/1.1\r\nX-USER:  Alice \r\n\r\n")).toBe("Alice");
    expect(v("GET / HTTP/1.1\r\nx-user: a\r\nX-User: b\r\n\r\n")).toBe("a");
    expect(v("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).toBe("");
    expect(v("GET /x-user: no HTTP/1.1\r\n\r\n")).toBe(""); // the request line is not a header
    expect(v("GET / HTTP/1.1\r\nHost: x\r\n\r\nX-User: body\r\n")).toBe(""); // past the head
  });
});
