// RFC 1928 on the wire, as far as a CONNECT-only server without authentication needs it: the
// method-selection greeting, the request, and the replies. Pure functions over a byte range:
// no sockets, so every malformed shape is tested directly.

export const SOCKS_VERSION = 5;
/** X'00' NO AUTHENTICATION REQUIRED: the only method we offer (as EdgeMesh). */
export const METHOD_NO_AUTH = 0x00;
/** X'FF' NO ACCEPTABLE METHODS. */
export const METHOD_NONE_ACCEPTABLE = 0xff;

export const CMD_CONNECT = 0x01;
export const CMD_BIND = 0x02;
export const CMD_UDP_ASSOCIATE = 0x03;

export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** Reply codes (RFC 1928 section 6). */
export const REP_SUCCEEDED = 0x00;
export const REP_GENERAL_FAILURE = 0x01;
export const REP_NOT_ALLOWED = 0x02;
export const REP_NETWORK_UNREACHABLE = 0x03;
export const REP_HOST_UNREACHABLE = 0x04;
export const REP_CONNECTION_REFUSED = 0x05;
export const REP_TTL_EXPIRED = 0x06;
export const REP_COMMAND_NOT_SUPPORTED = 0x07;
export const REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08;

/** Metric label per reply code (a bounded set). */
export const REPLY_NAMES: Readonly<Record<number, string>> = {
  [REP_SUCCEEDED]: "succeeded",
  [REP_GENERAL_FAILURE]: "general_failure",
  [REP_NOT_ALLOWED]: "not_allowed",
  [REP_NETWORK_UNREACHABLE]: "network_unreachable",
  [REP_HOST_UNREACHABLE]: "host_unreachable",
  [REP_CONNECTION_REFUSED]: "connection_refused",
  [REP_TTL_EXPIRED]: "ttl_expired",
  [REP_COMMAND_NOT_SUPPORTED]: "command_not_supported",
  [REP_ADDRESS_TYPE_NOT_SUPPORTED]: "address_type_not_supported",
};

/** Longest greeting: VER, NMETHODS, 255 methods. */
export const GREETING_MAX_BYTES = 2 + 255;
/** Longest request: VER CMD RSV ATYP, a 255-byte domain with its length byte, DST.PORT. */
export const REQUEST_MAX_BYTES = 4 + 1 + 255 + 2;

/** Parse outcome: more bytes needed, malformed (drop the client), or parsed. */
export const NEED_MORE = -1;

export interface GreetingResult {
  /** Bytes the greeting took, NEED_MORE, or 0 with `error` set when malformed. */
  readonly consumed: number;
  /** Offered X'00' (no authentication). */
  readonly noAuth: boolean;
  readonly error: string;
}

export interface SocksRequest {
  readonly command: number;
  readonly addressType: number;
  /** Dotted IPv4, the domain name as sent, or the IPv6 address in hex groups. */
  readonly host: string;
  readonly port: number;
}

export interface RequestResult {
  readonly consumed: number;
  readonly request: SocksRequest | null;
  readonly error: string;
}

const NEED_GREETING: GreetingResult = Object.freeze({ consumed: NEED_MORE, noAuth: false, error: "" });
const NEED_REQUEST: RequestResult = Object.freeze({ consumed: NEED_MORE, request: null, error: "" });

/** The method-selection message: VER NMETHODS METHODS... */
export function parseGreeting(buf: Uint8Array, off: number, end: number): GreetingResult {
  if (end - off < 1) return NEED_GREETING;
  if (buf[off] !== SOCKS_VERSION) return { consumed: 0, noAuth: false, error: `version ${buf[off]} is not SOCKS5` };
  if (end - off < 2) return NEED_GREETING;
  const n = buf[off + 1]!;
  if (n === 0) return { consumed: 0, noAuth: false, error: "greeting offers no methods" };
  if (end - off < 2 + n) return NEED_GREETING;
  let noAuth = false;
  for (let i = off + 2; i < off + 2 + n; i++) if (buf[i] === METHOD_NO_AUTH) noAuth = true;
  return { consumed: 2 + n, noAuth, error: "" };
}

/** The request: VER CMD RSV ATYP DST.ADDR DST.PORT. An unknown ATYP ends the request after it
 * (host "", port 0): it cannot be sized, and it is answered X'08'. */
export function parseRequest(buf: Uint8Array, off: number, end: number): RequestResult {
  const have = end - off;
  if (have < 1) return NEED_REQUEST;
  if (buf[off] !== SOCKS_VERSION) return bad(`request version ${buf[off]} is not SOCKS5`);
  if (have < 4) return NEED_REQUEST;
  if (buf[off + 2] !== 0) return bad(`reserved byte is ${buf[off + 2]}, not 0`);
  const command = buf[off + 1]!;
  const addressType = buf[off + 3]!;
  let addrLen: number;
  let addrOff = off + 4;
  if (addressType === ATYP_IPV4) addrLen = 4;
  else if (addressType === ATYP_IPV6) addrLen = 16;
  else if (addressType === ATYP_DOMAIN) {
    if (have < 5) return NEED_REQUEST;
    addrLen = buf[off + 4]!;
    if (addrLen === 0) return bad("empty domain name");
    addrOff++;
  } else {
    // Cannot be sized, so nothing after it can be read; the answer is X'08' and a close anyway.
    return { consumed: 4, request: { command, addressType, host: "", port: 0 }, error: "" };
  }
  const total = addrOff - off + addrLen + 2;
  if (have < total) return NEED_REQUEST;
  const host =
    addressType === ATYP_IPV4 ? ipv4(buf, addrOff) : addressType === ATYP_IPV6 ? ipv6(buf, addrOff) : latin1(buf, addrOff, addrLen);
  const port = (buf[addrOff + addrLen]! << 8) | buf[addrOff + addrLen + 1]!;
  return { consumed: total, request: { command, addressType, host, port }, error: "" };
}

function bad(error: string): RequestResult {
  return { consumed: 0, request: null, error };
}

function ipv4(b: Uint8Array, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function ipv6(b: Uint8Array, o: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[o + i]! << 8) | b[o + i + 1]!).toString(16));
  return groups.join(":");
}

function latin1(b: Uint8Array, o: number, n: number): string {
  let s = "";
  for (let i = o; i < o + n; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Method-selection replies, shared (never written to after creation). */
export const SELECT_NO_AUTH: Uint8Array = Uint8Array.of(SOCKS_VERSION, METHOD_NO_AUTH);
export const SELECT_NONE_ACCEPTABLE: Uint8Array = Uint8Array.of(SOCKS_VERSION, METHOD_NONE_ACCEPTABLE);

const REPLIES: Uint8Array[] = [];
/**
 * The reply for `code`: VER REP RSV, then BND.ADDR 0.0.0.0 and BND.PORT 0. The bound address of a
 * tunnel stream means nothing to the client (EdgeMesh sends the same zeros); one shared buffer per
 * code.
 */
export function reply(code: number): Uint8Array {
  let r = REPLIES[code];
  if (r === undefined) {
    r = Uint8Array.of(SOCKS_VERSION, code, 0, ATYP_IPV4, 0, 0, 0, 0, 0, 0);
    REPLIES[code] = r;
  }
  return r;
}
