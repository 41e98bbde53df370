// Noise's chacha20-poly1305 through the system's OpenSSL (libcrypto.so.3, bun:ffi).
//
// Why not libsodium: measured on this kind of machine (EPYC, AVX-512), OpenSSL's assembly
// runs chacha20-poly1305 at about 3.5 GiB/s, libsodium's at 1.4: Noise was a third of the
// sender's CPU in the raw tunnel bench. OpenSSL's EVP interface is also incremental, so a list of
// chunks (a batch of yamux frames) is sealed chunk by chunk straight into the output: no copy of
// the plaintext into one buffer first, and a ciphertext split over socket reads is opened without
// joining it. Per message: one init (key + nonce), optional AAD, one update per chunk, final, tag.
// When libcrypto.so.3 is missing `loadOpenSsl()` returns undefined and callers fall back.
import { dlopen, FFIType, ptr } from "bun:ffi";
import { nativeLibrary } from "../host/native.ts";
import { Uint8ArrayList } from "uint8arraylist";
import { AEAD_TAG_BYTES } from "./aead-constants.ts";
import { SEAL_HEADROOM_BYTES, sealRegion } from "./seal-buffers.ts";

export { AEAD_TAG_BYTES } from "./aead-constants.ts";

/**
 * Pass as `dst` to open(): decrypt in the ciphertext's own memory, chunk by chunk, and return the
 * plaintext as views of it (a list when the ciphertext was one). Only for ciphertexts nobody else
 * reads afterwards (socket reads handed to Noise: noise-frames.ts).
 */
export const IN_PLACE: Uint8Array = new Uint8Array(0);

/** A plaintext or ciphertext as Noise hands it: one array or a list of chunks. */
export type Chunks = Uint8Array | Uint8ArrayList;
/** Uint8ArrayList keeps its chunks in `bufs` (private in its types, read here without a copy). */
type ListFields = { bufs: Uint8Array[] };

export interface OpenSslAead {
  /**
   * ChaCha20-Poly1305 IETF. Returns ciphertext || tag as a view SEAL_HEADROOM_BYTES into the
   * region sealRegion() gives (the bytes before it are free for a length prefix).
   */
  seal(plain: Chunks, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array): Uint8Array;
  /**
   * Returns the plaintext, written into `dst` when it is large enough, or in place (IN_PLACE);
   * throws on a bad tag.
   */
  open(cipher: Chunks, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array, dst?: Uint8Array): Uint8Array | Uint8ArrayList;
}

const LIB_NAMES = ["libcrypto.so.3", "libcrypto.so", "libcrypto.3.dylib"];
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;
/** libcrypto bound on first use; undefined when it is not installed. */
export const loadOpenSsl: () => OpenSslAead | undefined = nativeLibrary(LIB_NAMES, bind);

function bind(name: string): OpenSslAead {
  const p = FFIType.ptr;
  const i32 = FFIType.i32;
  const lib = dlopen(name, {
    EVP_CIPHER_CTX_new: { args: [], returns: p },
    EVP_chacha20_poly1305: { args: [], returns: p },
    // (ctx, cipher, engine, key, iv, enc)
    EVP_CipherInit_ex: { args: [p, p, p, p, p, i32], returns: i32 },
    // (ctx, out, outl*, in, inl)
    EVP_CipherUpdate: { args: [p, p, p, p, i32], returns: i32 },
    EVP_CipherFinal_ex: { args: [p, p, p], returns: i32 },
    EVP_CIPHER_CTX_ctrl: { args: [p, i32, i32, p], returns: i32 },
  });
  const f = lib.symbols;
  const cipher = f.EVP_chacha20_poly1305();
  const encCtx = f.EVP_CIPHER_CTX_new();
  const decCtx = f.EVP_CIPHER_CTX_new();
  if (!cipher || !encCtx || !decCtx) throw new Error("OpenSSL has no chacha20-poly1305");
  // The cipher is set once per context; each message then only sets key and nonce (cipher NULL).
  if (f.EVP_CipherInit_ex(encCtx, cipher, null, null, null, 1) !== 1) throw new Error("EVP_CipherInit_ex failed");
  if (f.EVP_CipherInit_ex(decCtx, cipher, null, null, null, 0) !== 1) throw new Error("EVP_CipherInit_ex failed");
  // Passed as the array itself (never as a ptr() number kept aside): a number does not keep the
  // array alive, and OpenSSL writing into a collected array corrupts the heap.
  const outLen = new Int32Array(1);
  const tag = new Uint8Array(AEAD_TAG_BYTES);
  const scratch = new Uint8Array(AEAD_TAG_BYTES); // final writes nothing for this cipher

  let outAt = 0; // address where the next output byte goes
  /** Runs bytes [0, n) of `src` (n > 0) through the cipher into outAt. */
  const feed = (ctx: typeof encCtx, src: Uint8Array, n: number): void => {
    if (f.EVP_CipherUpdate(ctx, outAt, outLen, src, n) !== 1) throw new Error("chacha20-poly1305 update failed");
    outAt += n;
  };
  const start = (ctx: typeof encCtx, key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, enc: number): void => {
    if (key.length !== 32 || nonce.length !== 12) throw new Error("chacha20-poly1305 needs a 32-byte key and a 12-byte nonce");
    if (f.EVP_CipherInit_ex(ctx, null, null, key, nonce, enc) !== 1) throw new Error("EVP_CipherInit_ex failed");
    if (ad.length > 0 && f.EVP_CipherUpdate(ctx, null, outLen, ad, ad.length) !== 1) throw new Error("chacha20-poly1305 AAD failed");
  };

  /** Each chunk decrypted into itself; the plaintext is the chunks' first n bytes, as views. */
  const openListInPlace = (cipher: Uint8ArrayList, n: number, nonce: Uint8Array, ad: Uint8Array, key: Uint8Array): Uint8ArrayList => {
    start(decCtx, key, nonce, ad, 0);
    const bufs = (cipher as unknown as ListFields).bufs;
    const plain = new Uint8ArrayList();
    let at = 0;
    for (let i = 0; i < bufs.length; i++) {
      const b = bufs[i]!;
      const body = Math.min(b.length, n - at > 0 ? n - at : 0);
      if (body > 0) {
        outAt = ptr(b);
        feed(decCtx, b, body);
        plain.append(body === b.length ? b : b.subarray(0, body));
      }
      for (let j = body; j < b.length; j++) tag[at + j - n] = b[j]!;
      at += b.length;
    }
    if (f.EVP_CIPHER_CTX_ctrl(decCtx, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_BYTES, tag) !== 1) throw new Error("chacha20-poly1305 tag failed");
    if (f.EVP_CipherFinal_ex(decCtx, scratch, outLen) !== 1) throw new Error("Invalid chacha20poly1305 decryption");
    return plain;
  };

  return {
    seal(plain, nonce, ad, key) {
      const n = plain.byteLength;
      const region = sealRegion(n); // headroom + ciphertext + tag (seal-buffers.ts)
      const base = ptr(region);
      start(encCtx, key, nonce, ad, 1);
      outAt = base + SEAL_HEADROOM_BYTES;
      if (plain instanceof Uint8Array) {
        if (n > 0) feed(encCtx, plain, n);
      } else {
        const bufs = (plain as unknown as ListFields).bufs;
        for (let i = 0; i < bufs.length; i++) {
          const b = bufs[i]!;
          if (b.length > 0) feed(encCtx, b, b.length);
        }
      }
      if (f.EVP_CipherFinal_ex(encCtx, scratch, outLen) !== 1) throw new Error("chacha20-poly1305 final failed");
      if (f.EVP_CIPHER_CTX_ctrl(encCtx, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_BYTES, outAt) !== 1) throw new Error("chacha20-poly1305 tag failed");
      return new Uint8Array(region.buffer, region.byteOffset + SEAL_HEADROOM_BYTES, n + AEAD_TAG_BYTES);
    },

    open(cipher, nonce, ad, key, dst) {
      const total = cipher.byteLength;
      if (total < AEAD_TAG_BYTES) throw new Error("Invalid chacha20poly1305 decryption");
      const n = total - AEAD_TAG_BYTES;
      if (dst === IN_PLACE) {
        if (!(cipher instanceof Uint8Array)) return openListInPlace(cipher, n, nonce, ad, key);
        dst = cipher;
      }
      // In place when dst is the ciphertext's own memory (Noise passes such a view); OpenSSL
      // allows out == in, and dst never starts after the ciphertext, so no other overlap occurs.
      const out = dst !== undefined && dst.length >= n ? dst.subarray(0, n) : new Uint8Array(n);
      const base = n > 0 ? ptr(out) : 0;
      start(decCtx, key, nonce, ad, 0);
      outAt = base;
      if (cipher instanceof Uint8Array) {
        if (n > 0) feed(decCtx, cipher, n);
        tag.set(cipher.subarray(n));
      } else {
        // Chunks: the first n bytes are ciphertext, the last 16 the tag (possibly split).
        const bufs = (cipher as unknown as ListFields).bufs;
        let at = 0;
        for (let i = 0; i < bufs.length; i++) {
          const b = bufs[i]!;
          const body = Math.min(b.length, n - at > 0 ? n - at : 0);
          if (body > 0) feed(decCtx, b, body);
          for (let j = body; j < b.length; j++) tag[at + j - n] = b[j]!;
          at += b.length;
        }
      }
      if (f.EVP_CIPHER_CTX_ctrl(decCtx, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_BYTES, tag) !== 1) throw new Error("chacha20-poly1305 tag failed");
      if (f.EVP_CipherFinal_ex(decCtx, scratch, outLen) !== 1) throw new Error("Invalid chacha20poly1305 decryption");
      return out;
    },
  };
}
