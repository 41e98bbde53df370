// Optional native crypto: the system's libsodium through bun:ffi, for the two ciphers that sit
// on every tunnel byte (Noise's chacha20-poly1305 and pnet's XSalsa20). Bun's node:crypto has
// neither, and the WASM/JS versions cap a stream at a few tens of MiB/s. When libsodium is not
// installed (Debian: libsodium23) `loadSodium()` returns undefined and callers fall back.
import { dlopen, FFIType } from "bun:ffi";
import { nativeLibrary } from "../host/native.ts";

export interface Sodium {
  /** ChaCha20-Poly1305 IETF: returns ciphertext || 16-byte tag. */
  aeadEncrypt(plain: Uint8Array, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array): Uint8Array;
  /** Encrypts buf[0..plainLength) in place and writes the tag after it (buf is plainLength + 16). */
  aeadEncryptInPlace(buf: Uint8Array, plainLength: number, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array): void;
  /** Returns the plaintext (written into `dst` when given and large enough); throws on a bad tag. */
  aeadDecrypt(cipher: Uint8Array, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array, dst?: Uint8Array): Uint8Array;
  /** XSalsa20 XOR starting at 64-byte block `counter` (64-bit, unlike @noble's 32). */
  xsalsa20Xor(key: Uint8Array, nonce: Uint8Array, input: Uint8Array, output: Uint8Array, counter: number): void;
}

const LIB_NAMES = ["libsodium.so.23", "libsodium.so", "libsodium.dylib"];
const TAG_BYTES = 16;
/** libsodium bound on first use; undefined when it is not installed. */
export const loadSodium: () => Sodium | undefined = nativeLibrary(LIB_NAMES, bind);

function bind(name: string): Sodium {
  const ptr = FFIType.ptr;
  const u64 = FFIType.u64;
  const i32 = FFIType.i32;
  const lib = dlopen(name, {
    sodium_init: { args: [], returns: i32 },
    // (c, clen_p, m, mlen, ad, adlen, nsec, npub, k)
    crypto_aead_chacha20poly1305_ietf_encrypt: { args: [ptr, ptr, ptr, u64, ptr, u64, ptr, ptr, ptr], returns: i32 },
    // (m, mlen_p, nsec, c, clen, ad, adlen, npub, k)
    crypto_aead_chacha20poly1305_ietf_decrypt: { args: [ptr, ptr, ptr, ptr, u64, ptr, u64, ptr, ptr], returns: i32 },
    // (c, m, mlen, n, ic, k)
    crypto_stream_xsalsa20_xor_ic: { args: [ptr, ptr, u64, ptr, u64, ptr], returns: i32 },
  });
  const f = lib.symbols;
  if (f.sodium_init() < 0) throw new Error("sodium_init failed");
  // bun:ffi cannot take a pointer to an empty array; a 1-byte dummy with length 0 is the same.
  const one = new Uint8Array(1);
  const nz = (b: Uint8Array) => (b.length > 0 ? b : one);
  return {
    aeadEncrypt(plain, nonce, ad, key) {
      const out = new Uint8Array(plain.length + TAG_BYTES);
      const rc = f.crypto_aead_chacha20poly1305_ietf_encrypt(out, null, nz(plain), plain.length, nz(ad), ad.length, null, nonce, key);
      if (rc !== 0) throw new Error("chacha20-poly1305 encryption failed");
      return out;
    },
    aeadEncryptInPlace(buf, plainLength, nonce, ad, key) {
      // libsodium allows c == m: one buffer, no copy of the plaintext into a second one.
      const rc = f.crypto_aead_chacha20poly1305_ietf_encrypt(buf, null, buf, plainLength, nz(ad), ad.length, null, nonce, key);
      if (rc !== 0) throw new Error("chacha20-poly1305 encryption failed");
    },
    aeadDecrypt(cipher, nonce, ad, key, dst) {
      if (cipher.length < TAG_BYTES) throw new Error("Invalid chacha20poly1305 decryption");
      const n = cipher.length - TAG_BYTES;
      // libsodium allows m == c (in place) but not other overlaps; noise passes a dst that
      // starts where the ciphertext starts, which is exactly the in-place case.
      const out = dst && dst.length >= n ? dst.subarray(0, n) : new Uint8Array(n);
      const rc = f.crypto_aead_chacha20poly1305_ietf_decrypt(nz(out), null, null, cipher, cipher.length, nz(ad), ad.length, nonce, key);
      if (rc !== 0) throw new Error("Invalid chacha20poly1305 decryption");
      return out;
    },
    xsalsa20Xor(key, nonce, input, output, counter) {
      if (input.length === 0) return;
      f.crypto_stream_xsalsa20_xor_ic(output, input, input.length, nonce, counter, key);
    },
  };
}
