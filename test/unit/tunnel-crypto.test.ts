// The tunnel's ciphers: pnet's XSalsa20 key stream across arbitrary chunk boundaries (as Go's
// XORKeyStream), libsodium through bun:ffi against @noble's reference implementations, and the
// header extension fields our agents add.
import { describe, expect, test } from "bun:test";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { xsalsa20 } from "@noble/ciphers/salsa.js";
import { decodeProxy, encodeProxy, FEATURE_UDP_FRAMED, XSalsaStream } from "../../src/tunnel/index.ts";
import { pickAead } from "../../src/tunnel/noise.ts";
import { Uint8ArrayList } from "uint8arraylist";
import { nobleXSalsaXor } from "../../src/tunnel/pnet.ts";
import { loadSodium } from "../../src/tunnel/sodium.ts";

/** Deterministic bytes without Math.random, so a failure reproduces. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const key = bytes(32, 1);
const nonce = bytes(24, 2);
const message = bytes(300_000, 3);
const reference = xsalsa20(key, nonce, message);

describe("pnet key stream", () => {
  const splits = [
    [1, 63, 64, 65, 127, 128, 4096, 1],
    [7, 100_000, 3, 64 * 1024],
    [300_000],
  ];
  for (const xorName of ["libsodium", "noble"] as const) {
    for (const split of splits) {
      test(`${xorName}: chunks ${split.slice(0, 4).join(",")}… give the same bytes as one XSalsa20 pass`, () => {
        const xor = xorName === "noble" ? nobleXSalsaXor : loadSodium()!.xsalsa20Xor;
        const s = new XSalsaStream(key, nonce, xor);
        const out = new Uint8Array(message.length);
        let pos = 0;
        for (let i = 0; pos < message.length; i++) {
          const n = Math.min(split[i % split.length]!, message.length - pos);
          const chunk = message.slice(pos, pos + n);
          out.set(s.update(chunk, chunk), pos); // in place, as inbound data is decrypted
          pos += n;
        }
        expect(Buffer.from(out).equals(Buffer.from(reference))).toBe(true);
      });
    }
  }

  test("libsodium is loadable on this machine (Debian package libsodium23)", () => {
    expect(loadSodium()).toBeDefined();
  });
});

describe("Noise AEAD choices agree with @noble's chacha20-poly1305", () => {
  const k = bytes(32, 4);
  const n = bytes(12, 5);
  const ad = bytes(32, 6);
  for (const size of [0, 1, 1199, 1200, 65519]) {
    for (const kind of ["native", "wasm", "js"] as const) {
      test(`${kind}: ${size} bytes seal and open like the reference, and a flipped bit is rejected`, () => {
        const { aead, name } = pickAead(kind);
        expect(name).toBe(kind);
        const plain = bytes(size, size + 7);
        const sealed = aead.chaCha20Poly1305Encrypt(plain, n, ad, k).subarray();
        expect(Buffer.from(sealed).equals(Buffer.from(chacha20poly1305(k, n, ad).encrypt(plain)))).toBe(true);
        expect(Buffer.from(aead.chaCha20Poly1305Decrypt(sealed, n, ad, k).subarray()).equals(Buffer.from(plain))).toBe(true);
        const bad = sealed.slice();
        bad[0]! ^= 1;
        expect(() => aead.chaCha20Poly1305Decrypt(bad, n, ad, k)).toThrow();
      });
    }
  }
});

test("native AEAD seals a multi-chunk list (a batch of yamux frames) like its concatenation", () => {
  const { aead } = pickAead("native");
  const k = bytes(32, 4);
  const n = bytes(12, 5);
  const ad = bytes(32, 6);
  const parts = [bytes(12, 1), bytes(3000, 2), bytes(1, 3), bytes(12, 4), bytes(40000, 5)];
  const list = new Uint8ArrayList(...parts);
  const flat = list.subarray();
  const sealed = aead.chaCha20Poly1305Encrypt(list, n, ad, k).subarray();
  expect(Buffer.from(sealed).equals(Buffer.from(chacha20poly1305(k, n, ad).encrypt(flat)))).toBe(true);
  expect(Buffer.from(parts[1]!).equals(Buffer.from(bytes(3000, 2)))).toBe(true); // inputs untouched
});

describe("header extension fields", () => {
  test("features and acceptedFeatures round-trip and leave EdgeMesh's fields untouched", () => {
    const msg = { type: 0, protocol: "udp", nodeName: "n", ip: "10.0.0.1", port: 53, features: FEATURE_UDP_FRAMED };
    const wire = encodeProxy(msg);
    expect(decodeProxy(wire)).toEqual(msg);
    const plain = encodeProxy({ ...msg, features: undefined });
    expect(wire.length).toBe(plain.length + 3); // 2-byte tag for field 100 + 1-byte value
    expect(decodeProxy(encodeProxy({ type: 1, acceptedFeatures: 1 }))).toEqual({ type: 1, acceptedFeatures: 1 });
  });

  test("unknown length-delimited fields that are not UTF-8 are skipped, not refused", () => {
    // field 9 (bytes) = ff fe, then type SUCCESS
    expect(decodeProxy(Uint8Array.from([0x06, 0x4a, 0x02, 0xff, 0xfe, 0x08, 0x01]))).toEqual({ type: 1 });
  });
});
