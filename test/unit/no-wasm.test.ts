// src/tunnel/no-wasm.ts: with a native AEAD, loading Noise compiles no WebAssembly, and the
// stand-ins compute what the packages they replace compute. Each case runs in its own process:
// the plugin applies process-wide, and bun test shares one process between files.

import { describe, expect, test } from "bun:test";
import { mkdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { noiseWithoutWasmBuildPlugin } from "../../src/tunnel/no-wasm.ts";

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

  // The bundle (scripts/build.ts) gets the stand-ins from the build plugin. Built here around a
  // small entry, it runs once as is and once in a mount namespace of its own where libsodium and
  // libcrypto are /dev/null (nothing outside that namespace sees it), so the native AEAD cannot load.
  test("in a bundle: no WebAssembly with a native AEAD, the real WebAssembly AEAD without one", async () => {
    // Inside the repo: the bundle finds the real package in node_modules at run time.
    const dir = join(root, ".state", `no-wasm-test-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(join(dir, "entry.ts"), `${COUNT_WASM}
        const { asCrypto, pureJsCrypto } = await import("@chainsafe/libp2p-noise/crypto");
        const hex = (u) => Buffer.from(u.subarray ? u.subarray() : u).toString("hex");
        const key = new Uint8Array(32).map((_, i) => i * 3), nonce = new Uint8Array(12).fill(9), ad = new Uint8Array([7]);
        const plain = new Uint8Array(700).map((_, i) => i & 0xff);
        const sealed = asCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, key);
        console.log(JSON.stringify({
          compiled,
          seal: hex(sealed) === hex(pureJsCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, key)),
          open: hex(asCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, key)) === hex(plain),
          sha: hex(asCrypto.hashSHA256(plain)) === hex(pureJsCrypto.hashSHA256(plain)),
        }));`);
      const built = await Bun.build({ entrypoints: [join(dir, "entry.ts")], outdir: join(dir, "out"), target: "bun", splitting: true, plugins: [noiseWithoutWasmBuildPlugin()] });
      expect(built.success).toBe(true);
      const bundle = join(dir, "out", "entry.js");
      // Noise's chunk (the entry itself counts WebAssembly compiles).
      const chunks = await Promise.all(built.outputs.filter((o) => o.path !== bundle).map((o) => o.text()));
      expect(chunks.join("\n")).toContain("chaCha20Poly1305Encrypt");
      expect(chunks.join("\n")).not.toContain("WebAssembly");

      const run = async (cmd: string[]) => {
        const proc = Bun.spawn(cmd, { cwd: root, stdout: "pipe", stderr: "pipe" });
        const [out, err, exit] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
        if (exit !== 0) throw new Error(`exit ${exit}: ${err}`);
        return JSON.parse(out.trim().split("\n").at(-1)!);
      };
      expect(await run([process.execPath, bundle])).toEqual({ compiled: 0, seal: true, open: true, sha: true });

      const libs = [...new Set(["libsodium.so.23", "libcrypto.so.3"].flatMap((name) => {
        const m = Bun.spawnSync(["ldconfig", "-p"]).stdout.toString().match(new RegExp(`${name.replaceAll(".", "\\.")} \\([^)]*\\) => (\\S+)`));
        return m ? [realpathSync(m[1]!)] : [];
      }))];
      expect(libs.length).toBe(2);
      const hide = libs.map((l) => `mount --bind /dev/null ${l}`).join(" && ");
      const without = await run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", `${hide} && exec ${process.execPath} ${bundle}`]);
      expect(without.compiled).toBeGreaterThan(0);
      expect(without).toEqual({ compiled: without.compiled, seal: true, open: true, sha: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  test("in a bundle built with nativeCheck false: the stand-ins alone, no native library looked for", async () => {
    const dir = join(root, ".state", `no-wasm-test-js-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(join(dir, "entry.ts"), `${COUNT_WASM}
        const { asCrypto, pureJsCrypto } = await import("@chainsafe/libp2p-noise/crypto");
        const hex = (u) => Buffer.from(u.subarray ? u.subarray() : u).toString("hex");
        const key = new Uint8Array(32).fill(5), nonce = new Uint8Array(12).fill(1), ad = new Uint8Array([2]);
        const plain = new Uint8Array(300).map((_, i) => i & 0xff);
        const sealed = asCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, key);
        console.log(JSON.stringify({ compiled, seal: hex(sealed) === hex(pureJsCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, key)) }));`);
      const built = await Bun.build({ entrypoints: [join(dir, "entry.ts")], outdir: join(dir, "out"), target: "bun", splitting: true, plugins: [noiseWithoutWasmBuildPlugin({ nativeCheck: false })] });
      expect(built.success).toBe(true);
      const text = (await Promise.all(built.outputs.map((o) => o.text()))).join("\n");
      expect(text).not.toContain("nativeAeadBound");
      expect(text).not.toContain("bun:ffi");
      const proc = Bun.spawn([process.execPath, join(dir, "out", "entry.js")], { cwd: root, stdout: "pipe", stderr: "pipe" });
      const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
      expect(code).toBe(0);
      expect(JSON.parse(out.trim().split("\n").at(-1)!)).toEqual({ compiled: 0, seal: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
