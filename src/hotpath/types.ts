// Option and result types of the data plane, and the seam through which the tunnel plugs in.

import type { Protocol, ServicePort, TableSource } from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import type { RingConfig } from "./lb/index.ts";
import type { ZeroCopyEngine } from "./zerocopy/index.ts";

/**
 * The part of a byte stream that splicing drives. A Bun TCP socket satisfies it as is; a tunnel
 * stream (libp2p, later issue) implements it over its own buffers.
 */
export interface ByteStream {
  /**
   * Write bytes [offset, offset + length) of `data`; returns how many were accepted now (fewer when
   * the stream is full: the sink's drain() follows), or -1 when the stream is closed. The stream
   * must not keep `data` beyond the bytes it accepted.
   */
  write(data: Uint8Array, offset?: number, length?: number): number;
  /** Half-close: send FIN (end of our bytes); the other direction keeps flowing. */
  shutdown(): void;
  /** Close gracefully (both directions), after bytes already accepted. */
  end(): void;
  /** Abort: reset, drop anything buffered. */
  terminate(): void;
  /** Stop / restart delivering data() to the sink (backpressure toward the sender). */
  pause(): void;
  resume(): void;
}

/**
 * What a RemoteDialer reports back to the splice, exactly as a Bun socket handler would. Calls must
 * never throw into the dialer; they arrive on the event loop, never inside dial().
 */
export interface StreamSink {
  /** The stream is ready (the remote agent answered SUCCESS). At most once, never after fail(). */
  open(stream: ByteStream): void;
  /** The stream could not be opened (peer unreachable, remote dial FAILED). At most once. */
  fail(error: Error): void;
  /**
   * Optional (early data): the far agent takes payload before it answers. `stream` accepts
   * writes now; open() with the same stream, or fail(), follows. Bytes written before fail()
   * are lost: the sink keeps them to replay on the next endpoint. At most once, before open().
   */
  early?(stream: ByteStream): void;
  data(chunk: Uint8Array): void;
  drain(): void;
  /** The remote side sent FIN. */
  end(): void;
  /** The stream is gone; with an error when it was reset. */
  close(error?: Error): void;
}

/**
 * The tunnel seam. When a ProxyOptions.remote is given, endpoints whose `node` is set and is not
 * this node are reached through it instead of Bun.connect: the dialer opens a byte stream to
 * `ip:port` as seen by the agent on `node` (EdgeMesh's /libp2p/tunnel-proxy/1.0.0 header carries
 * exactly these), then drives `sink`. The splice code is the same for both kinds of upstream.
 * The sink stays valid after close: a late call for an abandoned dial is ignored. As with a Bun
 * socket, after end() or terminate() the stream must still report close() once.
 */
export interface RemoteDialer {
  dial(node: string, ip: string, port: number, protocol: Protocol, sink: StreamSink): void;
  /**
   * A UDP flow to an endpoint on `node`: datagrams keep their boundaries (the tunnel frames
   * them). Without this method, UDP endpoints on other nodes are not reachable (counted, dropped).
   */
  dialDatagrams?(node: string, ip: string, port: number, sink: DatagramSink): void;
}

/** A datagram path to one remote endpoint (a tunnel stream carrying framed datagrams). */
export interface DatagramChannel {
  /** False when the datagram was dropped (stream full or closed); UDP may drop. */
  send(datagram: Uint8Array): boolean;
  /** Close both ways (the far agent closes its UDP socket); close() on the sink follows. */
  close(): void;
}

/** What a DatagramChannel reports; same rules as StreamSink (event loop, at most once each). */
export interface DatagramSink {
  open(channel: DatagramChannel): void;
  fail(error: Error): void;
  /** One datagram; `datagram` is valid only during the call (it may be a reused buffer). */
  datagram(datagram: Uint8Array): void;
  close(error?: Error): void;
}

export interface ProxyOptions {
  table: TableSource;
  /** "127.0.0.1" in dev mode; the bridge IP (169.254.96.16) in agent mode. */
  bindHost: string;
  /**
   * Open a listener per service port of the table (default true). The edge gateway runs the
   * proxy without listeners, for spliceRouted only.
   */
  listen?: boolean;
  /** This node; endpoints on other nodes go through `remote` when given. */
  nodeName: string;
  remote?: RemoteDialer;
  /** Agent-wide cap on concurrent proxied TCP connections (each holds 2 descriptors). */
  maxConnections: number;
  /** 0 = no per-port cap. */
  maxConnectionsPerPort: number;
  /** UDP flow idle timeout; see UDP_IDLE_TIMEOUT_DEFAULT_MS for a sane default. */
  udpIdleTimeoutMs: number;
  /** Cap on concurrent UDP flows (each holds 1 descriptor); UDP_FLOWS_MAX_DEFAULT when absent. */
  maxUdpFlows?: number;
  consistentHash: RingConfig;
  metrics: MetricsRegistry;
  log: Logger;
  clock?: { now(): number };
  /** [0, 1) source for RANDOM; injectable for tests. */
  random?: () => number;
  /** Per-attempt connect timeout (DIAL_TIMEOUT_MS when absent). */
  dialTimeoutMs?: number;
  /**
   * The splice(2) engine (Linux; createZeroCopyIfSupported) that TCP connections between two
   * local Bun sockets are handed to once ZC_ADOPT_AFTER_BYTES went through. Created once by the
   * agent; the proxy stops it in stop() and drain(). Each adopted connection holds 4 descriptors
   * more (2 pipes) than maxConnections accounts for: size maxPairs with zeroCopyFdBudget().
   */
  zeroCopy?: ZeroCopyEngine;
}

export interface ListenerInfo {
  readonly host: string;
  readonly port: number;
  readonly protocol: Protocol;
}

export interface ProxyStats {
  /** Proxied TCP connections open now (accepted and not yet fully closed; adopted ones included). */
  activeTcp: number;
  udpFlows: number;
  tcpAccepted: number;
  tcpRefused: number;
  dialFailures: number;
  listeners: number;
}

export interface Proxy {
  /** Opens listeners for the current table and follows table.subscribe. */
  start(): void;
  /** By ServicePort.key. UDP listeners appear once their socket is bound (asynchronously). */
  listeners(): ReadonlyMap<string, ListenerInfo>;
  onListenersChanged(cb: (listeners: ReadonlyMap<string, ListenerInfo>) => void): () => void;
  /** Stop accepting; wait for open connections until the deadline; then close what is left. */
  drain(deadlineMs: number): Promise<void>;
  /** Close everything now (adopted pairs are reset by the engine, whose fds close shortly after). */
  stop(): void;
  /**
   * The other end of the tunnel: a stream that arrived from a peer agent for local endpoint
   * ip:port. Dials it (directly, once; the peer does LB and failover) and splices with the same
   * code as service connections. `result(true)` comes once connected, before any byte is written
   * to `stream` (EdgeMesh answers SUCCESS then); `result(false)` when the dial failed, after which
   * `stream` is terminated. Returns the sink the tunnel must drive with the stream's events, or
   * null when the agent is at its connection cap (answer FAILED). The stream is paused until the
   * dial completes.
   */
  spliceInbound(ip: string, port: number, stream: ByteStream, result: (ok: boolean) => void): StreamSink | null;
  /**
   * A client (a gateway TCP or TLS-passthrough connection) for service port `sp`, chosen by the
   * caller: picked, dialed with failover, spliced like a service listener's connection. `early`
   * holds bytes already read from the client (replayed first). Returns the sink the caller
   * drives with the client's events, or null at the connection cap. `stream` is paused until
   * an endpoint answers.
   */
  spliceRouted(sp: ServicePort, clientIp: string, stream: ByteStream, early: readonly Uint8Array[]): StreamSink | null;
  /**
   * A client whose target is already chosen (SOCKS5 CONNECT to a node): dial ip:port on `node`
   * (this node: directly; another: through `remote`), once, no failover, and splice. Otherwise as
   * spliceInbound; `result(false, error)` carries the last dial error (a socket error with `code`,
   * a tunnel error, or one with code ETIMEDOUT), after which `stream` is terminated. Counted
   * against maxConnections (null at the cap).
   */
  spliceTo(node: string, ip: string, port: number, stream: ByteStream, result: (ok: boolean, error: Error | null) => void): StreamSink | null;
  stats(): ProxyStats;
}
