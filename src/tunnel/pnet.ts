// libp2p private networks (the "pnet" PSK layer, as go-libp2p and EdgeMesh speak it): each side
// sends a random 24-byte nonce, then every byte in each direction is XORed with XSalsa20(psk,
// sender's nonce). There is no authentication here; a peer with another key produces garbage
// that makes the Noise handshake fail right after, which is how a PSK mismatch shows up.
// Written here because @libp2p/pnet is not among the installed packages. The cipher is libsodium's
// (bun:ffi) when the system has it, @noble's JS XSalsa20 otherwise.
import { randomBytes } from "node:crypto";
import type { AbortOptions, ConnectionProtector, MessageStream, StreamMessageEvent } from "@libp2p/interface";
import { byteStream, type AbstractMessageStream } from "@libp2p/utils";
import { LayeredMessageStream, remoteAddrOf } from "./layered-stream.ts";
import { xsalsa20 } from "@noble/ciphers/salsa.js";
import { PSK_KEY_BYTES } from "./psk.ts";
import { SEALED_BUFFERS } from "./seal-buffers.ts";
import { loadSodium } from "./sodium.ts";

export const PNET_NONCE_BYTES = 24;
/** How long the nonce exchange may take before the connection is dropped (go-libp2p has none). */
export const PNET_HANDSHAKE_TIMEOUT_MS = 5_000;
const BLOCK = 64;
/** The list type @libp2p/utils was built with (several uint8arraylist copies are installed). */
type ByteList = Parameters<AbstractMessageStream["sendData"]>[0];

/** XORs whole 64-byte blocks starting at block `counter` (input and output may be the same). */
export type XSalsaXor = (key: Uint8Array, nonce: Uint8Array, input: Uint8Array, output: Uint8Array, counter: number) => void;

/** @noble's XSalsa20; its counter stops at 2^32 blocks (256 GiB per direction of a connection). */
export const nobleXSalsaXor: XSalsaXor = (key, nonce, input, output, counter) => {
  xsalsa20(key, nonce, input, output, counter);
};

/** libsodium's XSalsa20 when the system has it (about 12x faster than @noble's), else @noble's. */
export function defaultXSalsaXor(): XSalsaXor {
  const sodium = loadSodium();
  return sodium ? sodium.xsalsa20Xor : nobleXSalsaXor;
}

/** XSalsa20 as a continuous key stream over calls of any length (Go's XORKeyStream). */
export class XSalsaStream {
  readonly #key: Uint8Array;
  readonly #nonce: Uint8Array;
  readonly #xor: XSalsaXor;
  #counter = 0; // next 64-byte block
  readonly #ks = new Uint8Array(BLOCK);
  readonly #zero = new Uint8Array(BLOCK);
  #ksPos = BLOCK; // unused key-stream bytes left in #ks

  constructor(key: Uint8Array, nonce: Uint8Array, xor: XSalsaXor = defaultXSalsaXor()) {
    this.#key = key;
    this.#nonce = nonce;
    this.#xor = xor;
  }

  /** XORs `input` into `output` (may be the same array). */
  update(input: Uint8Array, output: Uint8Array): Uint8Array {
    const n = input.length;
    let i = 0;
    while (this.#ksPos < BLOCK && i < n) output[i] = input[i++]! ^ this.#ks[this.#ksPos++]!;
    const full = (n - i) & ~(BLOCK - 1);
    if (full > 0) {
      this.#xor(this.#key, this.#nonce, input.subarray(i, i + full), output.subarray(i, i + full), this.#counter);
      this.#counter += full / BLOCK;
      i += full;
    }
    if (i < n) {
      this.#xor(this.#key, this.#nonce, this.#zero, this.#ks, this.#counter++);
      this.#ksPos = 0;
      while (i < n) output[i] = input[i++]! ^ this.#ks[this.#ksPos++]!;
    }
    return output;
  }
}

/**
 * Both libp2p stacks (js and Go) begin every protected connection with multistream-select's
 * header, so the first decrypted bytes tell at once whether both sides share the key.
 */
const MULTISTREAM_HEADER = new TextEncoder().encode("\x13/multistream/1.0.0\n");

/**
 * Why a connection's first bytes show the two sides do not share a pre-shared key:
 * "key_differs" - both have one, and the peer's bytes do not decrypt to the multistream header;
 * "peer_without_psk" - this node has one, the peer sent the plaintext header where its nonce belongs;
 * "peer_with_psk" - this node has none, and the peer's first bytes are not the header (its nonce).
 */
export type PskMismatchReason = "key_differs" | "peer_without_psk" | "peer_with_psk";
export const PSK_MISMATCH_REASONS: readonly PskMismatchReason[] = ["key_differs", "peer_without_psk", "peer_with_psk"];

/** Called once per connection whose first bytes show a PSK mismatch. */
export type PskMismatchHandler = (remote: string, reason: PskMismatchReason) => void;

/** True when the first min(len, header) bytes of `b` are multistream-select's header from `from`. */
function startsLikeHeader(b: Uint8Array, from: number): boolean {
  const n = Math.min(b.length, MULTISTREAM_HEADER.length - from);
  for (let i = 0; i < n; i++) if (b[i] !== MULTISTREAM_HEADER[from + i]) return false;
  return true;
}

class PnetMessageStream extends LayeredMessageStream {
  readonly #in: XSalsaStream;
  readonly #out: XSalsaStream;
  #checked = 0; // bytes of MULTISTREAM_HEADER verified so far
  readonly #onMismatch?: PskMismatchHandler;

  constructor(inner: MessageStream, psk: Uint8Array, localNonce: Uint8Array, remoteNonce: Uint8Array, onMismatch: PskMismatchHandler | undefined, xor: XSalsaXor) {
    super(inner);
    this.#in = new XSalsaStream(psk, remoteNonce, xor);
    this.#out = new XSalsaStream(psk, localNonce, xor);
    this.#onMismatch = onMismatch;
    inner.addEventListener("message", (evt: StreamMessageEvent) => {
      // Inbound chunks are fresh buffers from the socket: decrypt in place.
      if (evt.data instanceof Uint8Array) this.#deliver(this.#in.update(evt.data, evt.data));
      else for (const buf of evt.data) this.#deliver(this.#in.update(buf, buf));
    });
  }

  #deliver(plain: Uint8Array): void {
    if (this.#checked < MULTISTREAM_HEADER.length) {
      const n = Math.min(plain.length, MULTISTREAM_HEADER.length - this.#checked);
      for (let i = 0; i < n; i++) {
        if (plain[i] !== MULTISTREAM_HEADER[this.#checked + i]) {
          this.#checked = MULTISTREAM_HEADER.length;
          const remote = remoteAddrOf(this.inner);
          this.#onMismatch?.(remote, "key_differs");
          this.abort(new Error(`PSK mismatch with ${remote}`));
          return;
        }
      }
      this.#checked += n;
    }
    this.onData(plain);
  }

  sendData(data: ByteList) {
    // Sealed Noise messages (SEALED_BUFFERS) are ours alone: XOR them in place and send them as
    // they are. Anything else (multistream-select, the Noise handshake) is encrypted straight into
    // one new buffer, never in place (the caller may still own it): no concatenation copy, one write.
    const bufs = (data as unknown as { bufs: Uint8Array[] }).bufs;
    let owned = true;
    for (let i = 0; i < bufs.length && owned; i++) owned = SEALED_BUFFERS.has(bufs[i]!.buffer);
    if (owned && bufs.length > 0) {
      for (let i = 0; i < bufs.length; i++) {
        const b = bufs[i]!;
        SEALED_BUFFERS.delete(b.buffer); // at most once
        this.#out.update(b, b);
      }
      return { sentBytes: data.byteLength, canSendMore: this.inner.send(bufs.length === 1 ? bufs[0]! : data) };
    }
    const out = Buffer.allocUnsafe(data.byteLength); // every byte is written below
    let offset = 0;
    for (const chunk of data) {
      this.#out.update(chunk, out.subarray(offset, offset + chunk.length));
      offset += chunk.length;
    }
    return { sentBytes: out.length, canSendMore: this.inner.send(out) };
  }
}

class PskProtector implements ConnectionProtector {
  readonly [Symbol.toStringTag] = "edgemesh/pnet";
  constructor(
    private readonly psk: Uint8Array,
    private readonly onMismatch: PskMismatchHandler | undefined,
    private readonly xor: XSalsaXor,
  ) {}

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const localNonce = new Uint8Array(randomBytes(PNET_NONCE_BYTES));
    const signal = options?.signal ?? AbortSignal.timeout(PNET_HANDSHAKE_TIMEOUT_MS);
    const bytes = byteStream(connection);
    const [remote] = await Promise.all([bytes.read({ bytes: PNET_NONCE_BYTES, signal }), bytes.write(localNonce, { signal })]);
    const remoteNonce = remote.subarray().slice(); // own copy: the list may share memory
    if (startsLikeHeader(remoteNonce, 0)) {
      // A peer without a PSK speaks multistream-select in plaintext where the nonce belongs.
      const addr = remoteAddrOf(connection);
      this.onMismatch?.(addr, "peer_without_psk");
      const err = new Error(`PSK mismatch with ${addr}: the peer has no pre-shared key`);
      connection.abort(err);
      throw err;
    }
    const inner = bytes.unwrap(); // re-emits anything read past the nonce (already encrypted)
    return new PnetMessageStream(inner, this.psk, localNonce, remoteNonce, this.onMismatch, this.xor);
  }
}

/** libp2p `connectionProtector` for a 32-byte pnet key (see pskKeyFromFile). */
export function pnetProtector(psk: Uint8Array, onMismatch?: PskMismatchHandler, xor: XSalsaXor = defaultXSalsaXor()): () => ConnectionProtector {
  if (psk.length !== PSK_KEY_BYTES) throw new RangeError(`pnet key must be ${PSK_KEY_BYTES} bytes, got ${psk.length}`);
  const key = psk.slice();
  return () => new PskProtector(key, onMismatch, xor);
}

/**
 * For a node without a PSK: nothing is wrapped or encrypted, but the first bytes each connection
 * receives are checked against multistream-select's header, which every libp2p peer without a PSK
 * sends first. A peer with a PSK sends its random nonce there instead: that connection is
 * reported and aborted at once, where it would otherwise fail inside multistream-select with
 * nothing counted. The check hooks the connection's onData until the header's 20 bytes are seen
 * (bytes that arrived before protect() are checked from the read buffer), then unhooks itself:
 * no cost on the data path. A connection without that hook (not a libp2p socket connection) is
 * passed through unchecked.
 */
export function plaintextProtector(onMismatch: PskMismatchHandler): () => ConnectionProtector {
  return () => ({
    [Symbol.toStringTag]: "edgemesh/no-pnet",
    async protect(connection: MessageStream): Promise<MessageStream> {
      const c = connection as unknown as { onData?: (data: Uint8Array | { subarray(): Uint8Array }) => void; readBuffer?: { byteLength: number; subarray(start?: number, end?: number): Uint8Array } };
      const original = c.onData;
      // An own onData (bound in a constructor, as relayed connections do) cannot be unhooked later.
      if (typeof original !== "function" || Object.hasOwn(c, "onData")) return connection;
      let checked = 0;
      /** Checks the next bytes; false (after reporting and aborting) on a mismatch. */
      const check = (b: Uint8Array): boolean => {
        if (!startsLikeHeader(b, checked)) {
          checked = MULTISTREAM_HEADER.length;
          const addr = remoteAddrOf(connection);
          onMismatch(addr, "peer_with_psk");
          connection.abort(new Error(`PSK mismatch with ${addr}: the peer uses a pre-shared key, this node has none`));
          return false;
        }
        checked += Math.min(b.length, MULTISTREAM_HEADER.length - checked);
        return true;
      };
      const buffered = c.readBuffer;
      if (buffered !== undefined && buffered.byteLength > 0 && !check(buffered.subarray(0, Math.min(buffered.byteLength, MULTISTREAM_HEADER.length)))) return connection;
      if (checked >= MULTISTREAM_HEADER.length) return connection;
      c.onData = function (data) {
        const b = data instanceof Uint8Array ? data : data.subarray();
        const ok = check(b);
        if (checked >= MULTISTREAM_HEADER.length) delete c.onData; // the class's own method again
        if (ok) original.call(this, data);
      };
      return connection;
    },
  });
}
