// Option and result types of the tunnel's public API.
import type { Stream } from "@libp2p/interface";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import type { NoiseAead } from "./noise.ts";
import type { TransportKind } from "./host.ts";

/**
 * A proxy stream after the header exchange: libp2p 3's Stream (a MessageStream). After
 * SUCCESS only payload bytes travel on it. See the README-style notes in tunnel.ts.
 */
export type TunnelStream = Stream;

export interface RelayNode {
  nodeName: string;
  /** IPs (combined with listenPort) or full multiaddrs, as in EdgeMesh's relayNodes. */
  advertiseAddress: string[];
  /** Needed in secure mode (no name-derived IDs); compat mode derives it from nodeName. */
  peerId?: string;
}

export type IdentityOptions = { mode: "compat" } | { mode: "secure"; keyFile: string; allowedPeers?: string[] };

export interface TunnelOptions {
  nodeName: string;
  listenPort: number;
  /** Default: /ip4/0.0.0.0/tcp/{listenPort} (and /udp/{listenPort}/quic-v1 for QUIC). */
  listenAddrs?: string[];
  transport: TransportKind;
  /** 32-byte pnet key (pskKeyFromFile); undefined disables the private network. */
  psk?: Uint8Array;
  identity: IdentityOptions;
  relayNodes: RelayNode[];
  /** Run the relay v2 server (without limits). Default: nodeName is among relayNodes. */
  isRelay?: boolean;
  mdns: boolean;
  rendezvous: string;
  enableHolePunch: boolean;
  /** chacha20-poly1305 for Noise; default "auto" (libsodium if present, else WASM). */
  noiseAead?: NoiseAead;
  /** XSalsa20 for the PSK layer; default "auto" (libsodium if present, else @noble JS). */
  pnetCipher?: "auto" | "js";
  /** Proxy streams open at once, all peers together; TCP and UDP streams each have this many. */
  maxStreams?: number;
  /** Proxy streams open at once with one peer; TCP and UDP streams each have this many. */
  maxStreamsPerPeer?: number;
  /**
   * false: speak only EdgeMesh's own wire format (no header extensions: no early data, no UDP
   * framing or multiplexing), as an opener and as a receiver. Default true.
   */
  extensions?: boolean;
  /** Secure mode: a refused peer is logged once per this interval (default 10 min); every
   * refusal is counted in tunnel_gater_denied_total. */
  refusedLogIntervalMs?: number;
  log: Logger;
  metrics: MetricsRegistry;
}

export interface ProxyTarget {
  protocol: "tcp" | "udp";
  ip: string;
  port: number;
}

/** A CONNECT received from another agent. */
export interface ProxyHeader extends ProxyTarget {
  /** The node the opener believes it is talking to (EdgeMesh puts the target node here). */
  nodeName: string;
  /** The opener's peer ID, and its node name when discovery told us. */
  remotePeer: string;
  remoteNode?: string;
  /** UDP only: both sides frame datagrams (2-byte big-endian length + payload). */
  udpFramed: boolean;
  /**
   * UDP only: the stream carries every UDP flow of the opener to this node, each datagram framed
   * with a flow id (FEATURE_UDP_MUX; src/hotpath/remote/mux-frames.ts). The CONNECT's target
   * was the first flow's.
   */
  udpMux: boolean;
}

export interface OpenedProxyStream {
  stream: TunnelStream;
  /** UDP only: the far agent frames datagrams; false for EdgeMesh peers (raw datagrams). */
  udpFramed: boolean;
  /** UDP only: the far agent took this stream as the multiplexed one for all our UDP flows. */
  udpMux: boolean;
  /** True when the stream runs over a relayed (/p2p-circuit) connection. */
  relayed: boolean;
}

export interface OpenProxyStreamOptions {
  signal?: AbortSignal;
  /**
   * TCP: called right after CONNECT is sent, before the answer, when the far agent accepted
   * early data on this connection before (one of our agents; never an EdgeMesh one). Payload
   * sent on `stream` from then on travels ahead of SUCCESS, saving a round trip. If the answer
   * is FAILED (the promise rejects) those bytes are lost with the stream: keep them to replay
   * elsewhere. Not called for the first stream over a connection, nor for UDP.
   */
  early?: (stream: TunnelStream) => void;
}

/**
 * Decides an incoming CONNECT (check the table, dial the endpoint) and returns true to accept.
 * The handler may start splicing at once: writes to `stream` are held by the tunnel until its
 * SUCCESS is on the wire (and dropped if the answer is FAILED); incoming payload waits in the
 * stream until a 'message' listener is attached.
 */
export type ProxyHandler = (header: ProxyHeader, stream: TunnelStream) => boolean | Promise<boolean>;

/** Use and limit of one kind of stream: with this peer, and the agent's in total. */
export interface LimitUse {
  open: number;
  max: number;
  agentOpen: number;
  agentMax: number;
}

export interface StreamLimits {
  tcp: LimitUse;
  udp: LimitUse;
}

/** A CONNECT on /libp2p/tunnel-cni/1.0.0. */
export interface CniHeader {
  /** The opener's peer ID, and its node name when discovery told us. */
  remotePeer: string;
  remoteNode?: string;
  /** The node the opener believes it is talking to. */
  nodeName: string;
  /** FEATURE_* bits the opener offers (0 for EdgeMesh). */
  features: number;
}

/**
 * Decides an incoming CNI stream: the accepted feature bits (a subset of header.features, 0 for
 * none) to answer SUCCESS, or false to answer FAILED. Synchronous: the hot path attaches its
 * reader to `stream` before returning.
 */
export type CniHandler = (header: CniHeader, stream: TunnelStream) => number | false;

export interface OpenedCniStream {
  stream: TunnelStream;
  /** The offered feature bits the far agent accepted (0 for EdgeMesh). */
  acceptedFeatures: number;
  relayed: boolean;
}

export interface PeerInfo {
  peerId: string;
  nodeName?: string;
  connected: boolean;
  /** Remote addresses of open connections. */
  addrs: string[];
  relayed: boolean;
  /** Proxy streams open with this peer (TCP and UDP). */
  streams: number;
  /** Proxy streams with this peer against the stream limits, per protocol. */
  limits: StreamLimits;
}

export interface Tunnel {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly peerId: string;
  /** Multiaddrs this node listens on (with /p2p/<id>), available after start(). */
  addrs(): string[];
  /** Open a proxy stream to the agent of `node`: sends CONNECT, awaits SUCCESS/FAILED. */
  openProxyStream(node: string, target: ProxyTarget, options?: OpenProxyStreamOptions): Promise<OpenedProxyStream>;
  /** Incoming CONNECTs: return true to accept; the tunnel then answers SUCCESS. */
  handleProxy(handler: ProxyHandler): void;
  /** Open an Edge CNI stream (/libp2p/tunnel-cni/1.0.0) to `node`'s agent, offering `features`. */
  openCniStream(node: string, features: number, signal?: AbortSignal): Promise<OpenedCniStream>;
  /** Incoming Edge CNI streams (refused with FAILED until a handler is set). */
  handleCni(handler: CniHandler): void;
  /**
   * Teach the tunnel a node's peer ID and/or direct addresses (secure mode, tests, static).
   * In secure mode a given peer ID is pinned: discovery handshakes cannot override it.
   */
  addPeer(nodeName: string, peerId?: string, addrs?: string[]): Promise<void>;
  /** Forget a node's pinned peer ID (its published ID disappeared). */
  forgetPeer(nodeName: string): void;
  peers(): PeerInfo[];
  setRelayNodes(relays: RelayNode[]): void;
  /**
   * Secure mode: replace the allowed peer IDs (as other agents publish theirs); connections of
   * peers no longer allowed are closed. Relays stay allowed. Ignored in compat mode. May be
   * called before start(), so the gater admits the published peers from the first connection.
   */
  setAllowedPeers(peerIds: string[]): void;
}
