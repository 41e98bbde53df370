// @chainsafe/libp2p-noise's crypto module compiles and instantiates two WebAssembly modules the
// moment it is imported (as-chacha20poly1305 for messages under 1200 bytes, as-sha256 for its
// asCrypto hash). With OpenSSL or libsodium bound (noise.ts "native"/"sodium") neither is ever
// called, but compiling them costs the process ~6 MiB of RSS (WebAssembly compiler code paged in,
// instance memories; measured 2026-12-05: importing the package 50.7 -> 44.8 MiB) that nothing
// else in the agent needs. This swaps the two packages for small stand-ins, through a Bun runtime
// plugin registered before the tunnel's modules are loaded:
//   as-sha256:             digest() is node:crypto SHA-256 (the same function; Noise itself
//                          hashes with node:crypto already)
//   as-chacha20poly1305:   ChaCha20Poly1305 seals/opens with @noble/ciphers (same AEAD, pure JS;
//                          only reachable if someone forced the "wasm" AEAD afterwards)
// It does nothing when no native AEAD loads: then "auto" falls back to the WebAssembly AEAD, which
// stays the real one. Must run before anything imports @chainsafe/libp2p-noise (the plugin applies
// to modules loaded after it); src/main/agent.ts calls it before loading the tunnel.

import { loadOpenSsl } from "./openssl.ts";
import { loadSodium } from "./sodium.ts";

const SHA256_STAND_IN = `import { createHash } from "node:crypto";
export function digest(data) { return new Uint8Array(createHash("sha256").update(data).digest()); }
`;

const CHACHA_STAND_IN = `import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
export function newInstance() { return undefined; }
export class ChaCha20Poly1305 {
  constructor(_ctx) {}
  seal(key, nonce, plain, ad) { return chacha20poly1305(key, nonce, ad).encrypt(plain); }
  open(key, nonce, sealed, ad) {
    try { return chacha20poly1305(key, nonce, ad).decrypt(sealed); } catch { return null; }
  }
}
`;

let installed = false;

/** Installs the stand-ins when a native AEAD is available; true when they are in place. */
export function skipNoiseWasm(): boolean {
  if (installed) return true;
  if (loadSodium() === undefined && loadOpenSsl() === undefined) return false;
  Bun.plugin({
    name: "edgemesh-noise-without-wasm",
    setup(build) {
      build.onLoad({ filter: /[\\/]@chainsafe[\\/]as-sha256[\\/]lib[\\/]index\.js$/ }, () => ({ loader: "js", contents: SHA256_STAND_IN }));
      build.onLoad({ filter: /[\\/]@chainsafe[\\/]as-chacha20poly1305[\\/]lib[\\/]src[\\/]index\.js$/ }, () => ({ loader: "js", contents: CHACHA_STAND_IN }));
    },
  });
  installed = true;
  return true;
}
