// Noise transport messages laid out as the wire wants them, and opened where they arrive.
//
// @chainsafe/libp2p-noise 17 sends every message as two buffers, a fresh 2-byte length and the
// ciphertext, and @libp2p/tcp does one socket.write per buffer: without a PSK each message cost
// two writes (the 2-byte one a syscall and a TCP segment of its own), and a batch of frames
// larger than one message (65519 bytes) several. framedEncrypt seals all messages of one batch
// into one buffer, each length prefix in front of its ciphertext (seal-buffers.ts points each
// seal at its slot): one allocation and one socket write per batch, and the pnet layer XORs it
// in place. Receiving, the library joins a message split over two socket reads into a new buffer
// before opening it; inPlaceDecrypt opens it where it lies. The library has no option for either,
// so this is the one place that adjusts them: each secured connection gets its own `encrypt` and
// `decrypt` (instance properties shadowing EncryptedMessageStream.prototype's), which do what the
// library's do (split at the Noise maximum, go through the handshake's cipher state, which
// counts nonces) with our buffers. The bytes on the wire are identical.
// Over TCP the batch buffers come from a per-connection SealPool (seal-buffers.ts), reused once
// the layers below have let go of them; after each batch the encrypt tells watched plaintext
// buffers (the Edge CNI's slabs) that their bytes are sealed (noteSealed).
// tunnel-noise-frames.test.ts fails if the library's stream stops looking like this.
import { Uint8ArrayList } from "uint8arraylist";
import { AEAD_TAG_BYTES } from "./aead-constants.ts";
import { LayeredMessageStream } from "./layered-stream.ts";
import { IN_PLACE } from "./openssl.ts";
import { allocSealed, clearSealTarget, noteSealed, pendingBelow, SEAL_HEADROOM_BYTES, sealNextInto, SealPool } from "./seal-buffers.ts";

/** Noise's largest message (65535) less the 16-byte tag: the plaintext bytes per message. */
export const NOISE_MAX_PLAINTEXT_BYTES = 65535 - 16;

/** Noise's largest message, tag included. */
export const NOISE_MAX_MESSAGE_BYTES = 65535;

/** The parts of the library's EncryptedMessageStream this file relies on. */
interface NoiseStream {
  /** The stream below (the pnet layer or the TCP connection). */
  stream?: unknown;
  handshake: {
    encrypt(plaintext: Uint8Array | Uint8ArrayList): Uint8Array;
    decrypt(ciphertext: Uint8Array | Uint8ArrayList, dst?: Uint8Array): Uint8Array | Uint8ArrayList;
  };
  encrypt(chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList;
  decrypt(chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList;
}

/**
 * Gives `conn` (the secured connection Noise returns) the batch encrypt and the in-place decrypt
 * when the AEAD is one of ours (they honour sealNextInto and IN_PLACE); false when it is not, or
 * `conn` is not the library's stream as we know it (then the library's code runs unchanged).
 */
export function installFramedEncrypt(conn: object, nativeAead: boolean): boolean {
  if (!nativeAead) return false;
  const c = conn as Partial<NoiseStream>;
  if (typeof c.encrypt !== "function" || typeof c.decrypt !== "function") return false;
  if (typeof c.handshake?.encrypt !== "function" || typeof c.handshake?.decrypt !== "function") return false;
  const pending = pendingBelow(c.stream, (s) => s instanceof LayeredMessageStream);
  const pool = pending === undefined ? undefined : new SealPool(pending);
  (conn as NoiseStream).encrypt = function (this: NoiseStream, chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList {
    return framedEncrypt(this, chunk, pool);
  };
  (conn as NoiseStream).decrypt = inPlaceDecrypt;
  return true;
}

/**
 * Noise messages per batch buffer: a larger chunk (yamux sends a whole window's worth as one
 * frame once it opens, megabytes) is sealed into several buffers of at most 4 messages
 * (256 KiB), which a pool can keep; one buffer per chunk would be as large as the chunk.
 */
export const SEAL_BATCH_MESSAGES = 4;

/** This call's batch buffers and their used bytes (reused between calls: no allocation). */
const batches: Buffer[] = [];
const batchBytes: number[] = [];

function framedEncrypt(self: NoiseStream & { writeStatus?: string }, chunk: Uint8Array | Uint8ArrayList, sealPool: SealPool | undefined): Uint8ArrayList {
  const output = new Uint8ArrayList();
  const total = chunk.byteLength;
  if (total === 0) return output;
  // A stream that is closing or was aborted (a send below threw) gets no pooled buffers: the
  // pool's count of bytes handed down assumes every batch reaches the layers below.
  const pool = self.writeStatus === "writable" ? sealPool : undefined;
  const frame = SEAL_HEADROOM_BYTES + AEAD_TAG_BYTES;
  const perBatch = SEAL_BATCH_MESSAGES * NOISE_MAX_PLAINTEXT_BYTES;
  let n = 0;
  try {
    for (let from = 0; from < total; from += perBatch) {
      const to = Math.min(from + perBatch, total);
      const size = to - from + Math.ceil((to - from) / NOISE_MAX_PLAINTEXT_BYTES) * frame;
      const batch = pool === undefined ? allocSealed(size) : pool.take(size);
      let at = 0;
      for (let i = from; i < to; i += NOISE_MAX_PLAINTEXT_BYTES) {
        const end = Math.min(i + NOISE_MAX_PLAINTEXT_BYTES, to);
        const piece = chunk instanceof Uint8Array ? chunk.subarray(i, end) : chunk.sublist(i, end);
        sealNextInto(batch, at);
        const data = self.handshake.encrypt(piece);
        const len = data.byteLength;
        // A seal that ignored the slot (not one of our AEADs) would leave garbage on the wire.
        if (data.buffer !== batch.buffer || data.byteOffset !== batch.byteOffset + at + SEAL_HEADROOM_BYTES) {
          throw new Error("Noise seal did not write into its slot (noise-frames.ts needs the native AEAD)");
        }
        batch[at] = len >> 8;
        batch[at + 1] = len & 0xff;
        at += SEAL_HEADROOM_BYTES + len;
      }
      batches[n] = batch;
      batchBytes[n++] = size;
      output.append(size === batch.length ? batch : batch.subarray(0, size));
    }
  } finally {
    clearSealTarget();
  }
  // Only now, after the last take(): the caller (the library's sendData) hands the output down at
  // once, and a take() in between would have counted these bytes as gone before they went.
  for (let k = 0; k < n; k++) {
    pool?.handed(batches[k]!, batchBytes[k]!);
    batches[k] = EMPTY;
  }
  noteSealed(chunk);
  return output;
}

const EMPTY = Buffer.alloc(0);

/**
 * The library's decrypt, asking the AEAD to open each message in the socket buffers it arrived in
 * (IN_PLACE) instead of first joining a message split over two reads into a new buffer (the
 * library passes such a joined `dst`). Nothing else reads those buffers: the length-prefix
 * decoder has consumed them. Only with our native AEADs (noise.ts), which know IN_PLACE.
 */
function inPlaceDecrypt(this: NoiseStream, chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList {
  const output = new Uint8ArrayList();
  const total = chunk.byteLength;
  for (let i = 0; i < total; i += NOISE_MAX_MESSAGE_BYTES) {
    const end = Math.min(i + NOISE_MAX_MESSAGE_BYTES, total);
    if (end - AEAD_TAG_BYTES < i) throw new Error("Invalid chunk");
    const encrypted = chunk instanceof Uint8Array ? chunk.subarray(i, end) : chunk.sublist(i, end);
    output.append(this.handshake.decrypt(encrypted, IN_PLACE));
  }
  return output;
}
