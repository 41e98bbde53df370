// Noise under Bun: Bun's node:crypto has no chacha20-poly1305, and noise's default crypto uses
// it for messages of 1200 bytes or more, so that throws. We pick the AEAD explicitly and keep
// the rest of the default (node:crypto SHA-256 and X25519, @noble HKDF).
// We also wrap the encrypter to log one clear line when a handshake fails: behind a pnet layer
// with a different key, the Noise handshake is the first thing that breaks.
import { noise } from "@chainsafe/libp2p-noise";
import { asCrypto, defaultCrypto, pureJsCrypto } from "@chainsafe/libp2p-noise/crypto";
import type { ConnectionEncrypter, SecuredConnection } from "@libp2p/interface";
import type { Logger } from "../log/index.ts";
import type { Counter } from "../metrics/index.ts";
import { CoalescingMessageStream } from "./coalesce.ts";
import { remoteAddrOf } from "./layered-stream.ts";
import { installFramedEncrypt } from "./noise-frames.ts";
import { IN_PLACE, loadOpenSsl } from "./openssl.ts";
import { AEAD_TAG_BYTES } from "./aead-constants.ts";
import { SEAL_HEADROOM_BYTES, sealRegion } from "./seal-buffers.ts";
import { loadSodium } from "./sodium.ts";

/**
 * "native": OpenSSL's libcrypto via bun:ffi (about 3 GiB/s, see openssl.ts) for messages of
 * OPENSSL_MIN_BYTES or more and libsodium below (its per-call cost is lower), or libsodium alone
 * when libcrypto is missing; "sodium": libsodium only; "wasm": AssemblyScript
 * as-chacha20poly1305; "js": @noble/ciphers. "auto": native when a library loads, else wasm.
 * Native seals write where seal-buffers.ts says (a batch slot, or a buffer of their own).
 */
export type NoiseAead = "auto" | "native" | "sodium" | "wasm" | "js";

/** Below this, a message goes through libsodium: OpenSSL's EVP calls cost about 1 us more each. */
export const OPENSSL_MIN_BYTES = 2048;

type Aead = Pick<typeof asCrypto, "chaCha20Poly1305Encrypt" | "chaCha20Poly1305Decrypt">;
type Plain = Parameters<Aead["chaCha20Poly1305Encrypt"]>[0];

export function pickAead(kind: NoiseAead): { name: "native" | "sodium" | "wasm" | "js"; aead: Aead } {
  if (kind === "auto" || kind === "native" || kind === "sodium") {
    const sodium = loadSodium();
    const ssl = kind === "sodium" ? undefined : loadOpenSsl();
    if (sodium || ssl) {
      // Noise hands a list (yamux header + payload, or a batch of frames). libsodium: copy it
      // once into an uninitialised buffer with room for the tag and encrypt in place. OpenSSL:
      // seal chunk by chunk into the output, no copy.
      const sodiumSeal = (plain: Plain, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Uint8Array => {
        const n = plain.byteLength;
        const region = sealRegion(n);
        const out = new Uint8Array(region.buffer, region.byteOffset + SEAL_HEADROOM_BYTES, n + AEAD_TAG_BYTES);
        if (plain instanceof Uint8Array) out.set(plain);
        else {
          let offset = 0;
          for (const chunk of plain) {
            out.set(chunk, offset);
            offset += chunk.length;
          }
        }
        sodium!.aeadEncryptInPlace(out, n, nonce, ad, k);
        return out;
      };
      const sodiumOpen = (cipher: Plain, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array, dst?: Uint8Array): Uint8Array => {
        const flat = cipher.subarray(); // a view when the ciphertext is in one chunk
        return sodium!.aeadDecrypt(flat, nonce, ad, k, dst === IN_PLACE ? flat : dst);
      };
      const seal = ssl === undefined ? sodiumSeal : sodium === undefined ? (plain: Plain, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array) => ssl.seal(plain, nonce, ad, k) : (plain: Plain, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array) =>
        plain.byteLength >= OPENSSL_MIN_BYTES ? ssl.seal(plain, nonce, ad, k) : sodiumSeal(plain, nonce, ad, k);
      return {
        name: kind === "sodium" ? "sodium" : "native",
        aead: {
          chaCha20Poly1305Encrypt: seal,
          chaCha20Poly1305Decrypt: (cipher, nonce, ad, k, dst) =>
            ssl !== undefined && (sodium === undefined || cipher.byteLength >= OPENSSL_MIN_BYTES)
              ? ssl.open(cipher, nonce, ad, k, dst)
              : sodiumOpen(cipher, nonce, ad, k, dst),
        },
      };
    }
    if (kind !== "auto") throw new Error(`neither libcrypto (OpenSSL 3) nor libsodium found, but noise AEAD '${kind}' was asked for`);
  }
  return kind === "js" ? { name: "js", aead: pureJsCrypto } : { name: "wasm", aead: asCrypto };
}

type NoiseFactory = ReturnType<typeof noise>;
type NoiseComponents = Parameters<NoiseFactory>[0];

export function noiseForBun(o: { aead: NoiseAead; pskEnabled: boolean; log: Logger; failures: Counter }): NoiseFactory {
  const { aead, name } = pickAead(o.aead);
  const native = name === "native" || name === "sodium";
  const crypto = {
    ...defaultCrypto,
    chaCha20Poly1305Encrypt: aead.chaCha20Poly1305Encrypt,
    chaCha20Poly1305Decrypt: aead.chaCha20Poly1305Decrypt,
  };
  const factory = noise({ crypto });
  return (components: NoiseComponents) => {
    const inner = factory(components) as ConnectionEncrypter;
    const why = o.pskEnabled ? "the peer's identity or key exchange was rejected" : "the peer may use a PSK (private network) while this node does not";
    // The remote address, and the peer when the dial named one (an inbound peer is only known
    // once the handshake succeeds).
    const explain = (dir: string, conn: unknown, peer: unknown, err: unknown): never => {
      o.failures.value++;
      const ctx: Record<string, string> = { direction: dir, remote: remoteAddrOf(conn) };
      if (peer != null) ctx.peer = String(peer);
      o.log.warn(`connection refused: encrypted handshake failed, ${why}`, { ...ctx, error: (err as Error)?.message ?? String(err) });
      throw err;
    };
    const wrapped: ConnectionEncrypter = Object.create(inner);
    // The muxer above Noise writes through a CoalescingMessageStream (see coalesce.ts).
    wrapped.secureInbound = (conn, opts) =>
      inner.secureInbound(conn, opts).then((s) => coalesced(s, native), (err) => explain("inbound", conn, opts?.remotePeer, err));
    wrapped.secureOutbound = (conn, opts) =>
      inner.secureOutbound(conn, opts).then((s) => coalesced(s, native), (err) => explain("outbound", conn, opts?.remotePeer, err));
    return wrapped as ReturnType<NoiseFactory>;
  };
}

function coalesced<T extends SecuredConnection>(secured: T, native: boolean): T {
  installFramedEncrypt(secured.connection, native); // one buffer per batch, opened in place (noise-frames.ts)
  return { ...secured, connection: new CoalescingMessageStream(secured.connection) };
}
