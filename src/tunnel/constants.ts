// Tunables and wire constants of the tunnel, with units in their names.

export const PROXY_PROTOCOL = "/libp2p/tunnel-proxy/1.0.0";
export const DISCOVERY_PROTOCOL = "/libp2p/tunnel-discovery/1.0.0";
/** EdgeMesh's Edge CNI stream: CONNECT/SUCCESS, then IP packets (see cni.ts). */
export const CNI_PROTOCOL = "/libp2p/tunnel-cni/1.0.0";

/** EdgeMesh defaults (modules.edgeTunnel). */
export const DEFAULT_LISTEN_PORT = 20006;
export const DEFAULT_RENDEZVOUS = "EDGEMESH_PLAYGOUND"; // sic: EdgeMesh's spelling, peers must match

/**
 * EdgeMesh's stream limits (pkg/tunnel/limit.go): all streams, and streams to one peer. We apply
 * each to TCP and to UDP streams separately (see limits.ts), so neither can starve the other.
 */
export const DEFAULT_MAX_STREAMS = 10240;
export const DEFAULT_MAX_STREAMS_PER_PEER = 1024;

/** A peer that opened a proxy stream must send its CONNECT header within this time. */
export const HEADER_TIMEOUT_MS = 10_000;
/** Dial plus protocol negotiation plus the SUCCESS/FAILED answer, for openProxyStream. */
export const OPEN_TIMEOUT_MS = 15_000;

/**
 * yamux grows a stream's receive window up to this (its default is 16 MiB). What a paused
 * stream can receive is bounded by the window, so it must stay below the read buffer.
 */
export const YAMUX_MAX_WINDOW_BYTES = 4 * 1024 * 1024;
/** libp2p resets a stream whose unread bytes exceed this (its default is 4 MiB). */
export const STREAM_READ_BUFFER_BYTES = 6 * 1024 * 1024;

/**
 * How often the relays are looked at for a reconnect that is due (EdgeMesh's heartbeat is 120 s);
 * when one is due is the per-relay backoff's decision, so this only bounds the added delay.
 */
export const RELAY_CHECK_INTERVAL_MS = 1_000;
export const RELAY_BACKOFF_MAX_MS = 30_000;

/**
 * Header extension (unknown to EdgeMesh, which skips unknown fields): the CONNECT carries the
 * features the opener speaks, a SUCCESS from one of our agents the ones it accepted. EdgeMesh
 * answers without field 101 (it may echo 100), so the opener falls back to EdgeMesh behaviour.
 */
export const FIELD_FEATURES = 100;
export const FIELD_ACCEPTED_FEATURES = 101;
/** UDP datagrams travel as 2-byte big-endian length + payload instead of raw bytes. */
export const FEATURE_UDP_FRAMED = 1;
/**
 * TCP: the opener may send payload right behind CONNECT, before the answer (our inbound side
 * reads exactly the header and keeps what follows; EdgeMesh's drops it). A SUCCESS that carries
 * this bit tells the opener it may do so on later streams over the same connection.
 */
export const FEATURE_EARLY_DATA = 2;
/**
 * UDP: every UDP flow to the peer rides one long-lived stream, each datagram framed with its
 * flow's id (src/hotpath/remote/mux-frames.ts), instead of a stream per flow. Offered in a UDP
 * CONNECT (with FEATURE_UDP_FRAMED), accepted in the SUCCESS; the CONNECT's target is the first
 * flow's and is checked as any CONNECT's. EdgeMesh answers without it: a stream per flow.
 */
export const FEATURE_UDP_MUX = 4;

/** A limit being hit is logged at most once per peer per this interval (every hit is counted). */
export const LIMIT_LOG_INTERVAL_MS = 60_000;

/**
 * Edge CNI (/libp2p/tunnel-cni/1.0.0; a bit of its own, though the protocols differ): every
 * packet is preceded by a 10-byte virtio_net_hdr (little-endian), so TCP segmentation-offload
 * superpackets cross as one frame.
 */
export const FEATURE_CNI_VNET = 8;
