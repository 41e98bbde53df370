// Noise transport messages as one buffer each: length prefix and ciphertext together; and
// received messages opened in the buffers they arrived in.
//
// @chainsafe/libp2p-noise 17 sends every message as two buffers, a fresh 2-byte length and the
// ciphertext, and the layer below writes them one by one: @libp2p/tcp does one socket.write per
// buffer, so without a PSK every Noise message cost two writes (the 2-byte one a syscall and
// a TCP segment of its own when the socket is not backed up). Our native AEAD (noise.ts,
// openssl.ts) leaves two free bytes in front of each ciphertext, so the prefix can be written
// there and the message handed down as one view, with no copy. The library has no option for it,
// so this is the one place that adjusts it: each secured connection's own `encrypt` (an instance
// property shadowing EncryptedMessageStream.prototype.encrypt) does what the library's does
// (split at the Noise maximum, seal each piece through the handshake's cipher state, which
// counts the nonce) and frames in place when the headroom is there, as the library otherwise.
// Receiving, the library joins a message split over two socket reads into a new buffer before
// opening it; inPlaceDecrypt below opens it where it lies. The bytes on the wire are identical.
// tunnel-noise-frames.test.ts fails if the library's stream stops looking like this.
import { Uint8ArrayList } from "uint8arraylist";
import { AEAD_TAG_BYTES, IN_PLACE, SEAL_HEADROOM_BYTES } from "./openssl.ts";

/** Noise's largest message (65535) less the 16-byte tag: the plaintext bytes per message. */
export const NOISE_MAX_PLAINTEXT_BYTES = 65535 - 16;

/** Noise's largest message, tag included. */
export const NOISE_MAX_MESSAGE_BYTES = 65535;

/** The parts of the library's EncryptedMessageStream this file relies on. */
interface NoiseStream {
  handshake: {
    encrypt(plaintext: Uint8Array | Uint8ArrayList): Uint8Array;
    decrypt(ciphertext: Uint8Array | Uint8ArrayList, dst?: Uint8Array): Uint8Array | Uint8ArrayList;
  };
  encrypt(chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList;
  decrypt(chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList;
}

/**
 * Gives `conn` (the secured connection Noise returns) the framing encrypt and, when the AEAD
 * understands IN_PLACE, the in-place decrypt; false when it is not the library's stream as we
 * know it (then nothing is changed and the library's code runs).
 */
export function installFramedEncrypt(conn: object, aeadKnowsInPlace: boolean): boolean {
  const c = conn as Partial<NoiseStream>;
  if (typeof c.encrypt !== "function" || typeof c.decrypt !== "function") return false;
  if (typeof c.handshake?.encrypt !== "function" || typeof c.handshake?.decrypt !== "function") return false;
  (conn as NoiseStream).encrypt = framedEncrypt;
  if (aeadKnowsInPlace) (conn as NoiseStream).decrypt = inPlaceDecrypt;
  return true;
}

function framedEncrypt(this: NoiseStream, chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList {
  const output = new Uint8ArrayList();
  const total = chunk.byteLength;
  for (let i = 0; i < total; i += NOISE_MAX_PLAINTEXT_BYTES) {
    const end = Math.min(i + NOISE_MAX_PLAINTEXT_BYTES, total);
    const piece = chunk instanceof Uint8Array ? chunk.subarray(i, end) : chunk.sublist(i, end);
    const data = this.handshake.encrypt(piece);
    const n = data.byteLength;
    if (data.byteOffset === SEAL_HEADROOM_BYTES && data.buffer.byteLength === n + SEAL_HEADROOM_BYTES) {
      const framed = new Uint8Array(data.buffer, 0, n + SEAL_HEADROOM_BYTES);
      framed[0] = n >> 8;
      framed[1] = n & 0xff;
      output.append(framed);
    } else {
      output.append(Uint8Array.of(n >> 8, n & 0xff));
      output.append(data);
    }
  }
  return output;
}

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
