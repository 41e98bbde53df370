// Tunables of the data plane. Each is a named constant with its unit in the name and a reason,
// so a reader can tell which numbers were measured and which were chosen.

const second = 1000;

/**
 * Per-attempt connect timeout. A blackholed endpoint (SYN never answered) would otherwise hold
 * the client for the kernel's ~127 s SYN retry budget; 3 s is well above LAN/edge RTTs.
 */
export const DIAL_TIMEOUT_MS = 3 * second;

/**
 * Waits between failover rounds. Within a round every endpoint not yet tried is dialed at once
 * after the previous failure (no wait); only when all have failed do we back off, with EdgeMesh's
 * schedule (it waits 250 ms, 500 ms, 1 s, 2 s between its 4 tries of one endpoint at a time).
 * Length + 1 is the number of rounds.
 */
export const BACKOFF_MS: readonly number[] = [250, 500, 1 * second];

/** At most this many endpoints are tried per round, so one client cannot fan out to 1,000. */
export const MAX_DIALS_PER_ROUND = 16;

/**
 * Client bytes accepted before the upstream is connected. The client is paused while we dial,
 * so this only catches what the runtime already read; past it the connection is dropped.
 */
export const EARLY_BYTES_MAX = 1024 * 1024;

/**
 * Largest HTTP request head read for CONSISTENT_HASH_HEADER (nginx's default
 * large_client_header_buffers is 4 x 8 KiB). Past it we hash what we have: the header is absent.
 */
export const HTTP_HEAD_MAX_BYTES = 32 * 1024;

/** A client that has not sent a full request head by then is hashed as if the header were absent. */
export const HTTP_HEAD_TIMEOUT_MS = 5 * second;

/** Resolution of the single timer that expires dials, backoffs and head reads. */
export const WAIT_SWEEP_INTERVAL_MS = 50;

/** Free per-connection state objects kept for reuse; beyond it they go to the GC. */
export const CONN_POOL_MAX = 4096;

/**
 * Default UDP flow idle timeout. EdgeMesh's 250 ms drops replies of any request/response
 * protocol slower than that (DNS over a WAN, RADIUS, CoAP); Linux conntrack keeps an
 * unreplied UDP flow 30 s, and we follow it.
 */
export const UDP_IDLE_TIMEOUT_DEFAULT_MS = 30 * second;

/** Granularity of UDP idle expiry and affinity cleanup (one coarse sweep, no per-packet timers). */
export const UDP_SWEEP_INTERVAL_MS = 1 * second;

/**
 * How long a UDP flow may wait for its upstream (socket bind, or a tunnel stream to another
 * node: dial + header round trip) before it is dropped, whatever the idle timeout.
 */
export const UDP_OPEN_TIMEOUT_MS = 5 * second;

/** Datagrams queued for a flow while its upstream socket is being created. */
export const UDP_PENDING_MAX = 64;

/**
 * Receive buffer of each UDP service socket (udp/rcvbuf.ts): a burst of new flows from hundreds
 * of clients waits here while the event loop is busy. 4 MiB holds ~4,000 small datagrams.
 */
export const UDP_SERVICE_RCVBUF_BYTES = 4 * 1024 * 1024;

/** Default cap on concurrent UDP flows (each holds one descriptor). */
export const UDP_FLOWS_MAX_DEFAULT = 8192;

/**
 * A spliced TCP connection is handed to the zero-copy (splice(2)) engine once this many bytes
 * went through JS in full writes. Short request/response connections (HTTP, gRPC calls, DNS over
 * TCP) end long before it and never pay the hand-over (2 dups, 2 pipes, a worker round trip);
 * an elephant flow passes it within milliseconds and then moves at about half the CPU per GiB
 * (zerocopy/NOTES.md). 1 MiB is a few socket buffers' worth: small enough that bulk transfers
 * spend almost all their bytes in the engine.
 */
export const ZC_ADOPT_AFTER_BYTES = 1024 * 1024;
/**
 * Only chunks of at least this size count toward ZC_ADOPT_AFTER_BYTES: a bulk flow arrives in
 * chunks of tens to hundreds of KiB, a request/response flow in a few KiB per message. A long
 * keep-alive connection of small messages used to cross 1 MiB and be handed to the engine, where
 * each message costs a splice into a pipe and one out of it per direction plus the engine's
 * wake-ups (2026-12-05, wrk 64 connections 1 KiB: ~6 splice calls per request on the engine
 * thread on top of Bun's, 29-31 CPU-us per request against HAProxy's 22-27).
 */
export const ZC_MIN_CHUNK_BYTES = 16 * 1024;

/** Help of proxy_udp_flows_expired_total, registered by the proxy and the tunnel UDP dialer (one series). */
export const UDP_FLOWS_EXPIRED_HELP = "UDP flows closed after idling (a tunnel flow also when the far agent expired it first)";
