// Noise transport over an in-memory connection pair with our AEAD choices: bytes arrive intact in
// both directions for small and bulk sends, and with the framing encrypt (noise-frames.ts) each
// Noise message reaches the wire as one buffer instead of a 2-byte prefix plus ciphertext.
import { expect, test } from "bun:test";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { defaultLogger } from "@libp2p/logger";
import type { MessageStream } from "@libp2p/interface";
import { multiaddrConnectionPair } from "@libp2p/utils";
import { createMetrics } from "../../src/metrics/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { noise } from "@chainsafe/libp2p-noise";
import { defaultCrypto } from "@chainsafe/libp2p-noise/crypto";
import { noiseForBun, pickAead, type NoiseAead } from "../../src/tunnel/noise.ts";
import { installFramedEncrypt } from "../../src/tunnel/noise-frames.ts";

async function securedPair(aead: NoiseAead) {
  const [a, b] = multiaddrConnectionPair();
  const writes = { a: [] as number[] };
  // Count the buffers Noise hands to the connection below it (one socket.write each in @libp2p/tcp).
  const sendData = (a as unknown as { sendData: (d: Iterable<Uint8Array>) => unknown }).sendData.bind(a);
  (a as unknown as { sendData: (d: Iterable<Uint8Array>) => unknown }).sendData = (d) => {
    for (const buf of d) writes.a.push(buf.byteLength);
    return sendData(d);
  };
  const upgrader = { getStreamMuxers: () => new Map() };
  const make = async () => {
    const privateKey = await generateKeyPair("Ed25519");
    const factory = noiseForBun({ aead, pskEnabled: false, log: createMemoryLogger(), failures: createMetrics().counter("f", "f") });
    return { enc: factory({ privateKey, logger: defaultLogger(), upgrader } as never), privateKey };
  };
  const [na, nb] = await Promise.all([make(), make()]);
  const [sa, sb] = await Promise.all([na.enc.secureOutbound(a as never), nb.enc.secureInbound(b as never)]);
  return { a: sa.connection as MessageStream, b: sb.connection as MessageStream, writes };
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

async function transfer(from: MessageStream, to: MessageStream, chunks: Uint8Array[]): Promise<Uint8Array> {
  const total = chunks.reduce((s, c) => s + c.length, 0);
  const got = new Uint8Array(total);
  let at = 0;
  const done = new Promise<void>((resolve, reject) => {
    const onMessage = (e: { data: Uint8Array | Iterable<Uint8Array> }) => {
      for (const buf of e.data instanceof Uint8Array ? [e.data] : e.data) {
        if (at + buf.length > total) return reject(new Error(`more than ${total} bytes arrived`));
        got.set(buf, at);
        at += buf.length;
      }
      if (at === total) {
        to.removeEventListener("message", onMessage as never);
        resolve();
      }
    };
    to.addEventListener("message", onMessage as never);
  });
  for (const c of chunks) if (!from.send(c)) await new Promise((r) => from.addEventListener("drain", r, { once: true }));
  await Promise.race([done, Bun.sleep(10_000).then(() => Promise.reject(new Error(`only ${at} of ${total} bytes arrived`)))]);
  return got;
}

for (const aead of ["native", "sodium", "wasm"] as const) {
  test(`${aead}: small and bulk sends arrive intact both ways`, async () => {
    const { a, b } = await securedPair(aead);
    const small = [pattern(1, 1), pattern(100, 2), pattern(1500, 3), pattern(3000, 4)];
    const bulk = Array.from({ length: 40 }, (_, i) => pattern(64 * 1024 + (i % 3) * 7, i));
    for (const [from, to] of [[a, b], [b, a]] as const) {
      for (const chunks of [small, bulk]) {
        const got = await transfer(from, to, chunks);
        const want = Buffer.concat(chunks);
        expect(Buffer.from(got).equals(want)).toBe(true);
      }
    }
    a.abort(new Error("done"));
    b.abort(new Error("done"));
  });
}

test("native: each batch goes down as one buffer (length prefixes and ciphertexts together)", async () => {
  const { a, b, writes } = await securedPair("native");
  writes.a.length = 0;
  const chunks = Array.from({ length: 8 }, (_, i) => pattern(64 * 1024, i));
  await transfer(a, b, chunks);
  // 64 KiB does not fit one Noise message (65519 bytes): the library wrote 4 buffers per send.
  expect(writes.a.length).toBeLessThanOrEqual(8);
  expect(writes.a.filter((n) => n === 2).length).toBe(0);
  expect(writes.a.reduce((s, n) => s + n, 0)).toBeGreaterThanOrEqual(8 * (64 * 1024 + 2 * 18));
  a.abort(new Error("done"));
  b.abort(new Error("done"));
});

test("library check: noise's own secured stream has encrypt() and handshake.encrypt() (else review noise-frames.ts)", async () => {
  const [a, b] = multiaddrConnectionPair();
  const upgrader = { getStreamMuxers: () => new Map() };
  const make = async () => noise({ crypto: { ...defaultCrypto, ...pickAead("native").aead } })({ privateKey: await generateKeyPair("Ed25519"), logger: defaultLogger(), upgrader } as never);
  const [na, nb] = await Promise.all([make(), make()]);
  const [sa, sb] = await Promise.all([na.secureOutbound(a as never), nb.secureInbound(b as never)]);
  expect(installFramedEncrypt(sa.connection, true)).toBe(true);
  expect(installFramedEncrypt({ encrypt() {} }, true)).toBe(false);
  // Framed and unframed ends still talk.
  const got = await transfer(sa.connection, sb.connection, [pattern(70_000, 9)]);
  expect(Buffer.from(got).equals(Buffer.from(pattern(70_000, 9)))).toBe(true);
  sa.connection.abort(new Error("done"));
  sb.connection.abort(new Error("done"));
});
