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
//
// The bundle (scripts/build.ts) has no runtime loader to hook: there noiseWithoutWasmBuildPlugin()
// puts the stand-ins in at build time. as-sha256's is the same function either way; the chacha one
// decides when the bundle loads it: with a native AEAD bound it is the stand-in, without one it
// loads the real WebAssembly package from node_modules (so "auto" still falls back to it).

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

const SHA256_FILE = /[\\/]@chainsafe[\\/]as-sha256[\\/]lib[\\/]index\.js$/;
const CHACHA_FILE = /[\\/]@chainsafe[\\/]as-chacha20poly1305[\\/]lib[\\/]src[\\/]index\.js$/;

/** True when libsodium or OpenSSL's libcrypto is bound (Noise's AEAD is native). */
export function nativeAeadBound(): boolean {
  return loadSodium() !== undefined || loadOpenSsl() !== undefined;
}

let installed = false;

/** Installs the stand-ins when a native AEAD is available; true when they are in place. In the
 * bundle it does nothing (the build put them in; this module's file is then not a .ts file). */
export function skipNoiseWasm(): boolean {
  if (installed) return true;
  if (!import.meta.path.endsWith(".ts")) return false;
  if (!nativeAeadBound()) return false;
  Bun.plugin({
    name: "edgemesh-noise-without-wasm",
    setup(build) {
      build.onLoad({ filter: SHA256_FILE }, () => ({ loader: "js", contents: SHA256_STAND_IN }));
      build.onLoad({ filter: CHACHA_FILE }, () => ({ loader: "js", contents: CHACHA_STAND_IN }));
    },
  });
  installed = true;
  return true;
}

/** The same stand-ins for Bun.build (scripts/build.ts). The chacha module checks for a native AEAD
 * when it is evaluated (when the tunnel loads Noise) and, without one, loads the real package: its
 * name is computed so the bundler leaves that import to run time. `nativeCheck: false` (a bundle
 * whose Noise uses @noble's AEAD, bench/macro/libp2p-floor.ts) takes the stand-in as it is. */
export function noiseWithoutWasmBuildPlugin(o: { nativeCheck?: boolean } = {}): import("bun").BunPlugin {
  const self = import.meta.path;
  const chacha = o.nativeCheck === false ? CHACHA_STAND_IN : `import { nativeAeadBound } from ${JSON.stringify(self)};
${CHACHA_STAND_IN.replace("export function newInstance", "function standInInstance").replace("export class ChaCha20Poly1305", "class StandIn")}
const realName = ["@chainsafe", "as-chacha20poly1305"].join("/");
const real = nativeAeadBound() ? undefined : await import(realName);
export const newInstance = real ? real.newInstance : standInInstance;
export const ChaCha20Poly1305 = real ? real.ChaCha20Poly1305 : StandIn;
`;
  return {
    name: "edgemesh-noise-without-wasm",
    setup(build) {
      build.onLoad({ filter: SHA256_FILE }, () => ({ loader: "js", contents: SHA256_STAND_IN }));
      build.onLoad({ filter: CHACHA_FILE }, () => ({ loader: "js", contents: chacha }));
    },
  };
}
