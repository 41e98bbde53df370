// Per-connection state of a proxied TCP connection and the shared context every handler reaches
// through it. One Conn serves both sockets of a connection (client socket.data is the Conn; the
// upstream's data is a Dial pointing at it), and Conns are pooled: nothing here is allocated per
// chunk, and little per connection.

import type { Endpoint, ServicePort, TableSource } from "../../control/index.ts";
import type { Logger } from "../../log/index.ts";
import type { Counter } from "../../metrics/index.ts";
import type { Balancer } from "../lb/index.ts";
import type { ConnectHistograms, DataPathLog, PortMetrics } from "../observe.ts";
import type { ByteStream, RemoteDialer } from "../types.ts";
import type { ZeroCopyEngine } from "../zerocopy/index.ts";
import type { Dial } from "./splice.ts";

/** Lifecycle of a Conn. Plain numbers: compared on every event. */
export const PHASE_HEAD = 0; // reading the HTTP request head to hash a header
export const PHASE_DIALING = 1;
export const PHASE_BACKOFF = 2;
export const PHASE_SPLICING = 3;
export const PHASE_CLOSED = 4;
/** Handed to the zero-copy engine: no Bun sockets left, released by the engine's onDone. */
export const PHASE_ZEROCOPY = 5;

export interface TcpMetrics {
  accepted: Counter;
  refusedLimit: Counter;
  refusedNoEndpoint: Counter;
  dialFailures: Counter;
  dialTimeouts: Counter;
  resets: Counter;
  bytesUp: Counter;
  bytesDown: Counter;
}

export interface TcpContext {
  readonly table: TableSource;
  readonly balancer: Balancer;
  readonly nodeName: string;
  readonly remote: RemoteDialer | undefined;
  readonly clock: { now(): number };
  readonly dialTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerPort: number;
  readonly m: TcpMetrics;
  /** Connect time per successful dial attempt, local or through the tunnel. */
  readonly connect: ConnectHistograms;
  /** Rate-limited warnings for failed dials and connections without endpoints. */
  readonly dlog: DataPathLog;
  readonly log: Logger;
  /** The splice(2) engine elephant flows are handed to; null = every byte moves through JS. */
  readonly zc: ZeroCopyEngine | null;
  /** Conns with a deadline (dial timeout, backoff end, head timeout), checked by one sweep. */
  readonly waiting: Set<Conn>;
  /** Every Conn between accept and release, so drain/stop can close them. */
  readonly live: Set<Conn>;
  readonly pool: Conn[];
  active: number;
  accepting: boolean;
}

/** Listener data: which ServicePort a listener serves, and its own connection count. */
export interface TcpListenerState {
  readonly key: string;
  readonly ctx: TcpContext;
  /** This service port's series (or the shared overflow ones). */
  readonly pm: PortMetrics;
  active: number;
}

export class Conn {
  ctx: TcpContext;
  ls: TcpListenerState | null = null;
  sp: ServicePort | null = null;
  phase = PHASE_CLOSED;
  clientIp = "";
  /** A Bun socket for service clients; a tunnel stream for connections arriving from a peer. */
  client: ByteStream | null = null;
  /** A chosen target (tunnel inbound: a local endpoint; SOCKS5: a node's address, maybe on
   * another node): the one endpoint to dial (no LB, no failover). */
  target: Endpoint | null = null;
  /** Connections with a chosen target (tunnel inbound, SOCKS5): told once whether the dial
   * worked, and on failure with the last dial error (null when none was reported). */
  onResult: ((ok: boolean, error: Error | null) => void) | null = null;
  /** Why the last dial attempt failed (a socket error, a tunnel error, DIAL_TIMED_OUT). */
  lastError: Error | null = null;
  upstream: ByteStream | null = null;
  dial: Dial | null = null;
  /** Clock ms when the current wait (dial, backoff, head) ends. */
  deadline = 0;
  /** Failover round (0-based); each round tries every endpoint once. */
  round = 0;
  /** Endpoint indexes (into sp.endpoints) that failed in this round. */
  readonly tried: number[] = [];
  hashKey = "";
  /** Client bytes received before the upstream was connected, replayed in order. */
  readonly early: Uint8Array[] = [];
  earlyBytes = 0;

  // client -> upstream: a partly written chunk, and chunks the runtime delivered after pause().
  upBuf: Uint8Array | null = null;
  upOff = 0;
  readonly upQueue: Uint8Array[] = [];
  /** Client sent FIN: shut the upstream's write side once everything is flushed. */
  clientFin = false;

  // upstream -> client, the same.
  downBuf: Uint8Array | null = null;
  downOff = 0;
  readonly downQueue: Uint8Array[] = [];
  upstreamFin = false;

  /** Bytes written in full while splicing (both ways), toward the zero-copy hand-over. */
  moved = 0;
  /** The hand-over was tried (at most once per connection, whatever the outcome). */
  zcTried = false;
  /** The upstream sent something back (a request/response flow: see splice.ts adoptKeepAlive). */
  answered = false;

  constructor(ctx: TcpContext) {
    this.ctx = ctx;
  }
}

export function acquireConn(ctx: TcpContext): Conn {
  const c = ctx.pool.pop();
  if (c === undefined) return new Conn(ctx);
  return c;
}

/** Back to the pool; every field reset so no bytes or sockets are retained. */
export function recycleConn(c: Conn, poolMax: number): void {
  c.ls = null;
  c.sp = null;
  c.phase = PHASE_CLOSED;
  c.clientIp = "";
  c.client = null;
  c.target = null;
  c.onResult = null;
  c.lastError = null;
  c.upstream = null;
  c.dial = null;
  c.deadline = 0;
  c.round = 0;
  c.tried.length = 0;
  c.hashKey = "";
  c.early.length = 0;
  c.earlyBytes = 0;
  c.upBuf = null;
  c.upOff = 0;
  c.upQueue.length = 0;
  c.clientFin = false;
  c.downBuf = null;
  c.downOff = 0;
  c.downQueue.length = 0;
  c.upstreamFin = false;
  c.moved = 0;
  c.zcTried = false;
  c.answered = false;
  if (c.ctx.pool.length < poolMax) c.ctx.pool.push(c);
}
