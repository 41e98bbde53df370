// One error class for the tunnel; `code` lets callers and metrics tell failures apart without
// parsing messages, and the message names what failed and for which peer/target.

export type TunnelErrorCode =
  | "MALFORMED_HEADER" // a header that does not decode as the expected proto2 message
  | "HEADER_TOO_LARGE" // a header whose length prefix exceeds MAX_HEADER_BYTES
  | "PROXY_REFUSED" // the far agent answered FAILED
  | "NO_PEER" // no known address / peer ID for a node
  | "STREAM_LIMIT" // too many streams in total or to one peer
  | "BAD_KEY" // a key or PSK file that cannot be used
  | "BAD_CONFIG" // an option that cannot work (unknown interface, PSK over QUIC)
  | "RELAY_SILENT" // a relay stopped answering liveness probes; its connection was dropped
  | "RELAY_IDENTITY" // a relay's configured address answered with another peer ID
  | "CLOSED"; // the stream or tunnel closed before the exchange finished

export class TunnelError extends Error {
  override readonly name = "TunnelError";
  constructor(
    readonly code: TunnelErrorCode,
    message: string,
  ) {
    super(message);
  }
}
