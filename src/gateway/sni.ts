// The server name of a TLS ClientHello, read without terminating TLS (passthrough routing).
// Pure: bytes in, a name (or a verdict) out. Bounds-checked at every length field, so garbage
// is a verdict, never an exception or an out-of-range read.

/** Need more bytes for the ClientHello record. */
export const SNI_MORE = 0;
/** Not a TLS ClientHello (or malformed): drop the connection. */
export const SNI_INVALID = -1;

export type SniResult = { readonly status: typeof SNI_MORE | typeof SNI_INVALID } | { readonly status: 1; readonly name: string };

const MORE = { status: SNI_MORE } as const;
const INVALID = { status: SNI_INVALID } as const;
const NO_NAME = { status: 1, name: "" } as const;

/**
 * Reads the first TLS record of buf[0, len): it must be a handshake record holding a whole
 * ClientHello (clients send it in one record; 16 KiB at most). name "" = no SNI extension.
 */
export function readClientHelloSni(buf: Uint8Array, len: number): SniResult {
  if (len < 5) return MORE;
  if (buf[0] !== 22 || buf[1] !== 3) return INVALID; // handshake, TLS 1.x record version
  const recLen = (buf[3]! << 8) | buf[4]!;
  if (recLen < 4 || recLen > 16384 + 256) return INVALID;
  if (len < 5 + recLen) return MORE;
  const end = 5 + recLen;
  let p = 5;
  if (buf[p] !== 1) return INVALID; // ClientHello
  const hsLen = (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
  p += 4;
  // A ClientHello longer than its record would continue in the next one: not supported.
  if (p + hsLen > end) return INVALID;
  const hsEnd = p + hsLen;
  p += 2 + 32; // client_version, random
  if (p + 1 > hsEnd) return INVALID;
  p += 1 + buf[p]!; // session_id
  if (p + 2 > hsEnd) return INVALID;
  p += 2 + ((buf[p]! << 8) | buf[p + 1]!); // cipher_suites
  if (p + 1 > hsEnd) return INVALID;
  p += 1 + buf[p]!; // compression_methods
  if (p === hsEnd) return NO_NAME; // no extensions
  if (p + 2 > hsEnd) return INVALID;
  const extEnd = p + 2 + ((buf[p]! << 8) | buf[p + 1]!);
  p += 2;
  if (extEnd > hsEnd) return INVALID;
  while (p + 4 <= extEnd) {
    const type = (buf[p]! << 8) | buf[p + 1]!;
    const size = (buf[p + 2]! << 8) | buf[p + 3]!;
    p += 4;
    if (p + size > extEnd) return INVALID;
    if (type === 0) return serverName(buf, p, p + size);
    p += size;
  }
  return p === extEnd ? NO_NAME : INVALID;
}

function serverName(buf: Uint8Array, p: number, end: number): SniResult {
  if (p + 2 > end) return INVALID;
  const listEnd = p + 2 + ((buf[p]! << 8) | buf[p + 1]!);
  p += 2;
  if (listEnd > end) return INVALID;
  while (p + 3 <= listEnd) {
    const kind = buf[p]!;
    const n = (buf[p + 1]! << 8) | buf[p + 2]!;
    p += 3;
    if (p + n > listEnd) return INVALID;
    if (kind === 0) {
      let name = "";
      for (let i = p; i < p + n; i++) {
        let c = buf[i]!;
        // A host name: letters, digits, '-', '.', '_' (seen in the wild); anything else is refused.
        if (c >= 65 && c <= 90) c += 32;
        const ok = (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95;
        if (!ok) return INVALID;
        name += String.fromCharCode(c);
      }
      return { status: 1, name: name.endsWith(".") ? name.slice(0, -1) : name };
    }
    p += n;
  }
  return NO_NAME;
}
