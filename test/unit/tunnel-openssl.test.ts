// OpenSSL's chacha20-poly1305 through bun:ffi (openssl.ts): the same bytes as @noble's reference for
// plaintexts given as lists of chunks of any sizes (a batch of yamux frames), ciphertexts split
// anywhere (socket reads) opened into a separate buffer or in place, and a flipped bit refused.
// Many rounds with allocation in between: a pointer kept past its array's life shows up here.
import { describe, expect, test } from "bun:test";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { Uint8ArrayList } from "uint8arraylist";
import { IN_PLACE, loadOpenSsl } from "../../src/tunnel/openssl.ts";
import { SEAL_HEADROOM_BYTES } from "../../src/tunnel/seal-buffers.ts";

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
function bytes(n: number, r: () => number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 256) | 0;
  return out;
}

const ssl = loadOpenSsl();

test("libcrypto (OpenSSL 3) is loadable on this machine", () => {
  expect(ssl).toBeDefined();
});

describe("seal and open agree with the reference", () => {
  const r = rng(42);
  const key = bytes(32, r);
  const nonce = bytes(12, r);
  for (const adLength of [0, 32]) {
    test(`200 random chunkings up to 65519 bytes, AAD ${adLength} bytes`, () => {
      const ad = bytes(adLength, r);
      for (let round = 0; round < 200; round++) {
        const target = round % 10 === 0 ? 65519 : (r() * 65519) | 0;
        const parts: Uint8Array[] = [];
        let total = 0;
        while (total < target) {
          const p = r();
          const n = Math.min(target - total, p < 0.3 ? 12 : p < 0.6 ? (r() * 100) | 0 : (r() * 20000) | 0);
          parts.push(bytes(n, r));
          total += n;
        }
        const list = new Uint8ArrayList(...parts);
        const flat = list.subarray();
        const ref = chacha20poly1305(key, nonce, ad).encrypt(flat);
        const sealed = ssl!.seal(list, nonce, ad, key);
        expect(sealed.byteOffset).toBe(SEAL_HEADROOM_BYTES);
        expect(Buffer.from(sealed).equals(Buffer.from(ref))).toBe(true);
        // Split the ciphertext at a random point (inside the tag too) and open it.
        const cut = (r() * (ref.length + 1)) | 0;
        const split = new Uint8ArrayList(ref.slice(0, cut), ref.slice(cut));
        const opened = ssl!.open(split, nonce, ad, key, new Uint8Array(flat.length)).subarray();
        expect(Buffer.from(opened).equals(Buffer.from(flat))).toBe(true);
        // In place, as Noise passes it when the message is in one buffer.
        const copy = ref.slice();
        const inPlace = ssl!.open(copy, nonce, ad, key, copy.subarray(0, flat.length)) as Uint8Array;
        expect(inPlace.buffer).toBe(copy.buffer);
        expect(Buffer.from(inPlace).equals(Buffer.from(flat))).toBe(true);
        // IN_PLACE on a split ciphertext: each chunk holds its own plaintext afterwards.
        const parts2 = [ref.slice(0, cut), ref.slice(cut)];
        const views = ssl!.open(new Uint8ArrayList(...parts2), nonce, ad, key, IN_PLACE) as Uint8ArrayList;
        expect(Buffer.from(views.subarray()).equals(Buffer.from(flat))).toBe(true);
        expect(Buffer.from(parts2[0]!.subarray(0, Math.min(cut, flat.length))).equals(Buffer.from(flat.subarray(0, Math.min(cut, flat.length))))).toBe(true);
      }
    });
  }

  test("a flipped bit in the ciphertext or the tag is refused", () => {
    const plain = bytes(5000, r);
    const sealed = ssl!.seal(plain, nonce, new Uint8Array(0), key).slice();
    for (const at of [0, 4999, 5000, 5015]) {
      const bad = sealed.slice();
      bad[at]! ^= 1;
      expect(() => ssl!.open(bad, nonce, new Uint8Array(0), key)).toThrow("Invalid chacha20poly1305 decryption");
    }
    expect(Buffer.from(ssl!.open(sealed, nonce, new Uint8Array(0), key).subarray()).equals(Buffer.from(plain))).toBe(true);
  });
});
