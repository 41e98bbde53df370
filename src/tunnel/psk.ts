// EdgeMesh's private-network key: it wraps hex(sha256(PSK file)) in the go-libp2p V1 PSK text
// format with the "/base64/" encoding, whose decoder then base64-decodes the *hex string* and
// keeps the first 32 bytes. Odd, but it is what every EdgeMesh node uses, so we do the same.
import { createHash } from "node:crypto";
import { TunnelError } from "./errors.ts";

export const PSK_KEY_BYTES = 32;

/** The 32-byte pnet key EdgeMesh derives from the bytes of a PSK file. */
export function pskKeyFromFile(bytes: Uint8Array): Uint8Array {
  const hex = createHash("sha256").update(bytes).digest("hex"); // 64 chars, valid base64 alphabet
  const decoded = Buffer.from(hex, "base64"); // 48 bytes
  if (decoded.length < PSK_KEY_BYTES) throw new TunnelError("BAD_KEY", `psk decodes to ${decoded.length} bytes`);
  return new Uint8Array(decoded.subarray(0, PSK_KEY_BYTES));
}
