// Noise transport messages as one buffer each: length prefix and ciphertext together.
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
// The bytes on the wire are identical. tunnel-noise-frames.test.ts fails if the library's
// stream stops looking like this.
import { Uint8ArrayList } from "uint8arraylist";
import { SEAL_HEADROOM_BYTES } from "./openssl.ts";

/** Noise's largest message (65535) less the 16-byte tag: the plaintext bytes per message. */
export const NOISE_MAX_PLAINTEXT_BYTES = 65535 - 16;

/** The parts of the library's EncryptedMessageStream this file relies on. */
interface NoiseStream {
  handshake: { encrypt(plaintext: Uint8Array | Uint8ArrayList): Uint8Array };
  encrypt(chunk: Uint8Array | Uint8ArrayList): Uint8ArrayList;
}

/**
 * Gives `conn` (the secured connection Noise returns) the framing encrypt; false when it is not
 * the library's stream as we know it (then nothing is changed and the library's code runs).
 */
export function installFramedEncrypt(conn: object): boolean {
  const c = conn as Partial<NoiseStream>;
  if (typeof c.encrypt !== "function" || typeof c.handshake?.encrypt !== "function") return false;
  (conn as NoiseStream).encrypt = framedEncrypt;
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
