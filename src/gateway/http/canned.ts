// The gateway's own answers, encoded once. Never a silent close: a request the gateway cannot
// route or carry gets a status that says why (EdgeMesh closed the connection instead).

const enc = new TextEncoder();

function response(status: number, reason: string, body: string, close: boolean): Uint8Array {
  const text = `${body}\n`;
  return enc.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain\r\ncontent-length: ${text.length}\r\n${close ? "connection: close\r\n" : ""}server: edgemesh-gateway\r\n\r\n${text}`,
  );
}

export interface Canned {
  readonly status: number;
  /** The connection can stay open after it (else "connection: close" is in it). */
  readonly keepAlive: Uint8Array;
  readonly close: Uint8Array;
}

function canned(status: number, reason: string, body: string): Canned {
  return { status, keepAlive: response(status, reason, body, false), close: response(status, reason, body, true) };
}

export const BAD_REQUEST = canned(400, "Bad Request", "bad request");
export const NOT_FOUND = canned(404, "Not Found", "no route for this host and path");
export const METHOD_NOT_ALLOWED = canned(405, "Method Not Allowed", "CONNECT is not served");
export const REQUEST_TIMEOUT = canned(408, "Request Timeout", "request head not received in time");
export const HEADERS_TOO_LARGE = canned(431, "Request Header Fields Too Large", "request head too large");
export const NOT_IMPLEMENTED = canned(501, "Not Implemented", "transfer coding not supported");
export const BAD_GATEWAY = canned(502, "Bad Gateway", "upstream closed or sent an invalid response");
export const UNAVAILABLE = canned(503, "Service Unavailable", "no healthy upstream");
export const GATEWAY_TIMEOUT = canned(504, "Gateway Timeout", "upstream did not answer in time");
export const VERSION_NOT_SUPPORTED = canned(505, "HTTP Version Not Supported", "HTTP/1.0 and HTTP/1.1 only (HTTP/2 with prior knowledge is passed through)");

export function cannedFor(status: number): Canned {
  switch (status) {
    case 404:
      return NOT_FOUND;
    case 405:
      return METHOD_NOT_ALLOWED;
    case 408:
      return REQUEST_TIMEOUT;
    case 431:
      return HEADERS_TOO_LARGE;
    case 501:
      return NOT_IMPLEMENTED;
    case 502:
      return BAD_GATEWAY;
    case 503:
      return UNAVAILABLE;
    case 504:
      return GATEWAY_TIMEOUT;
    case 505:
      return VERSION_NOT_SUPPORTED;
    default:
      return BAD_REQUEST;
  }
}
