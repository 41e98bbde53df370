// src/tunnel/no-wasm.ts: with a native AEAD, loading Noise compiles no WebAssembly, and the
// stand-ins compute what the packages they replace compute. Each case runs in its own process:
// the plugin applies process-wide, and bun test shares one process between files.

import { describe, expect, test } from "bun:test";

const root = new URL("../../", import.meta.url).pathname;

/** Runs `body` in a fresh Bun process (cwd: the repo) and returns what it printed as JSON. */
async function fresh(body: string): Promise<any> {
  const proc = Bun.spawn([process.execPath, "-e", body], { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`exit ${code}: ${err}`);
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

// Counts WebAssembly modules compiled from here on (the packages use new WebAssembly.Module).
const COUNT_WASM = `
let compiled = 0;
const RealModule = WebAssembly.Module;
WebAssembly.Module = new Proxy(RealModule, { construct(t, a) { compiled++; return Reflect.construct(t, a); } });
for (const k of ["compile", "instantiate"]) { const f = WebAssembly[k]; WebAssembly[k] = (...a) => { compiled++; return f(...a); }; }
`;

describe("Noise without WebAssembly", () => {
  test("without the stand-ins, importing Noise compiles WebAssembly (the count can fail)", async () => {
    const r = await fresh(`${COUNT_WASM}
      await import("@chainsafe/libp2p-noise");
      console.log(JSON.stringify({ compiled }));`);
    expect(r.compiled).toBeGreaterThan(0);
  });

  test("with a native AEAD, nothing is compiled and the stand-ins match the real code", async () => {
    const r = await fresh(`${COUNT_WASM}
      const { skipNoiseWasm } = await import("./src/tunnel/no-wasm.ts");
      const skipped = skipNoiseWasm();
      const { asCrypto, pureJsCrypto } = await import("@chainsafe/libp2p-noise/crypto");
      await import("@chainsafe/libp2p-noise");
      const before = compiled;
      const hex = (u) => Buffer.from(u.subarray ? u.subarray() : u).toString("hex");
      const key = new Uint8Array(32).map((_, i) => i * 7);
      const nonce = new Uint8Array(12).map((_, i) => i + 1);
      const ad = new Uint8Array([1, 2, 3]);
      const plain = new Uint8Array(1000).map((_, i) => i & 0xff);
      const sealed = asCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, key);
      const reference = pureJsCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, key);
      const opened = asCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, key);
      const tampered = sealed.slice(); tampered[5] ^= 1;
      let rejected = false;
      try { asCrypto.chaCha20Poly1305Decrypt(tampered, nonce, ad, key); } catch { rejected = true; }
      console.log(JSON.stringify({
        skipped, before, after: compiled,
        sha: hex(asCrypto.hashSHA256(plain)) === hex(pureJsCrypto.hashSHA256(plain)),
        seal: hex(sealed) === hex(reference),
        open: hex(opened) === hex(plain),
        rejected,
      }));`);
    // The test machine has libsodium and OpenSSL (the tunnel's own tests rely on them).
    expect(r).toEqual({ skipped: true, before: 0, after: 0, sha: true, seal: true, open: true, rejected: true });
  });
});
