// Tunables of the gateway's data plane, each with its unit in the name and a reason.

const second = 1000;

/**
 * Largest request head (request line + headers). nginx answers 400/414 past 4 x 8 KiB by
 * default (large_client_header_buffers); Envoy's default max_request_headers_kb is 60. We
 * answer 431 past 32 KiB.
 */
export const MAX_REQUEST_HEAD_BYTES = 32 * 1024;

/** Largest response head from an upstream; past it the response is a 502. */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

/** A request head must be complete this long after its first byte (slowloris): else 408. */
export const HEADER_TIMEOUT_MS = 10 * second;

/** A keep-alive client connection with no request in progress is closed after this. */
export const CLIENT_IDLE_TIMEOUT_MS = 60 * second;

/** Per-attempt upstream connect timeout when the route sets no retries.perTryTimeout. */
export const CONNECT_TIMEOUT_MS = 3 * second;

/** Idle pooled upstream connections are closed after this (below common 60-75 s server timeouts). */
export const UPSTREAM_IDLE_TIMEOUT_MS = 30 * second;

/** Idle upstream connections kept per endpoint; more are closed when released. */
export const MAX_IDLE_PER_ENDPOINT = 256;

/**
 * Client bytes queued toward an upstream that is not writable yet (connecting, or full), and
 * pipelined requests waiting for the current response; past it the client is not read until
 * the queue drains.
 */
export const MAX_QUEUED_BYTES = 256 * 1024;

/** Resolution of the one timer that checks every deadline (head, idle, connect, request). */
export const SWEEP_INTERVAL_MS = 250;

/** Where a rewritten head is built; grows (doubling) up to what a head may be. */
export const SCRATCH_INITIAL_BYTES = 16 * 1024;

/** Free connection state objects kept for reuse. */
export const CONN_POOL_MAX = 1024;

/** A TLS handshake must finish this long after the TCP accept. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10 * second;

/** Bytes of a ClientHello read for its SNI (TLS passthrough) before giving up. */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;
