// UDP forwarding: one service socket per UDP ServicePort, a flow table keyed by client address
// and port (a Map of Maps, so a lookup allocates no key string), one connected upstream socket
// per flow, replies sent back from the service socket so the client sees the address it used.
// Datagram boundaries are kept because every datagram is one send(). Idle flows are expired by a
// coarse sweep against a coarse clock updated by that sweep, not by a timer or clock read per
// packet. Every socket has an error handler and every send() is in try/catch: an ICMP
// port-unreachable otherwise takes the process down (measured on Bun 1.4.4), and the error
// argument can be undefined.
// A flow whose endpoint is on another node goes through the tunnel instead of a socket (the
// RemoteDialer's dialDatagrams: a flow of the node's multiplexed stream, or a stream of its own
// with EdgeMesh); the flow is its DatagramSink, and idle expiry closes it like it closes a
// socket, so nothing outlives its flow.
// All flows of the proxy are kept in one least-recently-used list (touched per datagram, a few
// pointer writes): at the flow cap the least recently used flow is closed to make room (counted,
// logged at most once a minute) rather than new clients refused, and the idle sweep walks from
// the old end and stops at the first flow in use.

import type { udp } from "bun";
import type { Endpoint, ServicePort, TableSource } from "../../control/index.ts";
import type { Logger } from "../../log/index.ts";
import type { Counter } from "../../metrics/index.ts";
import { UDP_OPEN_TIMEOUT_MS, UDP_PENDING_MAX, UDP_SERVICE_RCVBUF_BYTES } from "../constants.ts";
import type { Balancer } from "../lb/index.ts";
import { LruList, type LruEntry } from "../lru.ts";
import type { DataPathLog, PortMetrics } from "../observe.ts";
import { raiseReceiveBuffer } from "./rcvbuf.ts";
import type { DatagramChannel, DatagramSink, RemoteDialer } from "../types.ts";

export interface UdpMetrics {
  flowsCreated: Counter;
  flowsExpired: Counter;
  dropped: Counter;
  sendErrors: Counter;
  noEndpoint: Counter;
  socketErrors: Counter;
  remoteFailures: Counter;
  evicted: Counter;
}

export interface UdpContext {
  readonly table: TableSource;
  readonly balancer: Balancer;
  readonly log: Logger;
  /** Rate-limited warnings: no endpoint for a datagram, a tunnel peer not reached. */
  readonly dlog: DataPathLog;
  readonly m: UdpMetrics;
  readonly maxFlows: number;
  readonly nodeName: string;
  readonly remote: RemoteDialer | undefined;
  readonly idleTimeoutMs: number;
  /** Coarse clock ms, refreshed by the proxy's sweep timer. */
  now: number;
  flows: number;
  accepting: boolean;
  /** Every flow, least recently used first. */
  readonly lru: LruList<Flow>;
  /** When the flow cap was last logged (once a minute at most). */
  capLoggedAt: number;
  capNotLogged: number;
}

const NOTHING_TRIED: readonly number[] = [];

/** A connected UDP socket, or a tunnel stream carrying datagrams: both send and close. */
type FlowUpstream = Pick<udp.ConnectedSocket<"uint8array">, "send" | "close"> | DatagramChannel;

export class Flow implements DatagramSink, LruEntry {
  lruPrev: LruEntry | null = null;
  lruNext: LruEntry | null = null;
  upstream: FlowUpstream | null = null;
  /** Datagrams that arrived while the upstream socket was being created. */
  pending: Uint8Array[] = [];
  lastSeen: number;
  closed = false;
  /** The endpoint this flow goes to (for the warning when its tunnel stream fails). */
  ep: Endpoint | null = null;
  constructor(readonly ls: UdpListener, readonly addr: string, readonly port: number, now: number) {
    this.lastSeen = now;
  }
  // DatagramSink of a tunnel stream (endpoint on another node).
  open(ch: DatagramChannel): void {
    flowBound(this, ch);
  }
  fail(error: Error): void {
    this.ls.ctx.m.remoteFailures.value++;
    this.ls.pm.dialErrors.value++;
    if (this.ep !== null) this.ls.ctx.dlog.dialFailed(this.ls.key, this.ep, true, error);
    closeFlow(this); // the next datagram of this client picks an endpoint anew
  }
  datagram(d: Uint8Array): void {
    flowReply(this, d);
  }
  close(): void {
    closeFlow(this);
  }
}

export class UdpListener {
  socket: udp.Socket<"uint8array"> | null = null;
  closed = false;
  readonly flows = new Map<string, Map<number, Flow>>();
  readonly key: string;
  /** Flows of this service port open now. */
  count = 0;
  constructor(
    readonly sp: ServicePort,
    /** This service port's series (or the shared overflow ones). */
    readonly pm: PortMetrics,
    readonly ctx: UdpContext,
  ) {
    this.key = sp.key;
  }
}

/** Bind a service socket on host:0; `bound` runs once it is ready (binding is asynchronous). */
export function openUdpListener(ctx: UdpContext, sp: ServicePort, pm: PortMetrics, host: string, bound: (ls: UdpListener) => void): UdpListener {
  const key = sp.key;
  const ls = new UdpListener(sp, pm, ctx);
  // One handler object per listener (not per packet): the closure is how data() finds `ls`.
  Bun.udpSocket({
    hostname: host,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data: (_s, buf, port, addr) => serviceData(ls, buf, port, addr),
      error: () => {
        ctx.m.socketErrors.value++;
      },
    },
  }).then(
    (sock) => {
      if (ls.closed) return sock.close();
      raiseReceiveBuffer(sock, UDP_SERVICE_RCVBUF_BYTES);
      ls.socket = sock;
      bound(ls);
    },
    (err) => ctx.log.error("udp listener bind failed", { key, host, err }),
  );
  return ls;
}

export function closeUdpListener(ls: UdpListener): void {
  ls.closed = true;
  for (const byPort of ls.flows.values()) for (const f of byPort.values()) closeFlow(f);
  try {
    ls.socket?.close();
  } catch {
    // already closed
  }
  ls.socket = null;
}

function serviceData(ls: UdpListener, buf: Uint8Array, port: number, addr: string): void {
  const ctx = ls.ctx;
  const byPort = ls.flows.get(addr);
  let f = byPort === undefined ? undefined : byPort.get(port);
  if (f === undefined) {
    const created = openFlow(ls, addr, port);
    if (created === null) return;
    f = created;
  } else ctx.lru.touch(f);
  f.lastSeen = ctx.now;
  const up = f.upstream;
  if (up === null) {
    if (f.pending.length < UDP_PENDING_MAX) f.pending.push(buf);
    else ctx.m.dropped.value++;
    return;
  }
  try {
    if (!up.send(buf)) ctx.m.dropped.value++;
  } catch {
    ctx.m.sendErrors.value++;
    closeFlow(f);
  }
}

function openFlow(ls: UdpListener, addr: string, port: number): Flow | null {
  const ctx = ls.ctx;
  if (!ctx.accepting) {
    ctx.m.dropped.value++;
    return null;
  }
  if (ctx.flows >= ctx.maxFlows && !evictOldest(ctx)) {
    ctx.m.dropped.value++;
    ls.pm.limit.value++;
    return null;
  }
  const sp = ctx.table.current().byKey[ls.key];
  const idx = sp === undefined ? -1 : ctx.balancer.pick(sp, addr, "", NOTHING_TRIED);
  if (idx < 0) {
    ctx.m.noEndpoint.value++;
    ls.pm.noEndpoint.value++;
    ctx.dlog.noEndpoint(ls.key, sp === undefined ? "service port gone" : "no ready endpoints");
    return null;
  }
  const ep = sp!.endpoints[idx]!;
  const f = new Flow(ls, addr, port, ctx.now);
  f.ep = ep;
  ls.pm.connections.value++;
  let byPort = ls.flows.get(addr);
  if (byPort === undefined) ls.flows.set(addr, (byPort = new Map()));
  byPort.set(port, f);
  ls.count++;
  ctx.lru.push(f);
  ctx.flows++;
  ctx.m.flowsCreated.value++;
  if (ep.node !== "" && ep.node !== ctx.nodeName && ctx.remote !== undefined) {
    if (ctx.remote.dialDatagrams === undefined) {
      ctx.m.remoteFailures.value++;
      closeFlow(f);
      return null;
    }
    ctx.remote.dialDatagrams(ep.node, ep.ip, ep.port, f);
    return f;
  }
  Bun.udpSocket({
    binaryType: "uint8array",
    connect: { hostname: ep.ip, port: ep.port },
    socket: {
      data: (_s, reply) => flowReply(f, reply),
      error: () => {
        // ICMP unreachable from the endpoint: drop the flow so the next datagram picks anew.
        ctx.m.socketErrors.value++;
        closeFlow(f);
      },
    },
  }).then(
    (sock) => flowBound(f, sock),
    () => {
      ctx.m.socketErrors.value++;
      closeFlow(f);
    },
  );
  return f;
}

function flowBound(f: Flow, sock: FlowUpstream): void {
  if (f.closed) return sock.close();
  f.upstream = sock;
  f.lastSeen = f.ls.ctx.now; // idle time counts from when the flow could first send
  f.ls.ctx.lru.touch(f);
  const m = f.ls.ctx.m;
  for (const buf of f.pending) {
    try {
      if (!sock.send(buf)) m.dropped.value++;
    } catch {
      m.sendErrors.value++;
    }
  }
  f.pending.length = 0;
}

function flowReply(f: Flow, buf: Uint8Array): void {
  if (f.closed) return;
  const ctx = f.ls.ctx;
  f.lastSeen = ctx.now;
  ctx.lru.touch(f);
  const s = f.ls.socket;
  if (s === null) return;
  try {
    if (!s.send(buf, f.port, f.addr)) ctx.m.dropped.value++;
  } catch {
    ctx.m.sendErrors.value++;
  }
}

function closeFlow(f: Flow): void {
  if (f.closed) return;
  f.closed = true;
  const byPort = f.ls.flows.get(f.addr);
  if (byPort !== undefined && byPort.get(f.port) === f) {
    byPort.delete(f.port);
    if (byPort.size === 0) f.ls.flows.delete(f.addr);
  }
  f.ls.count--;
  f.ls.ctx.lru.remove(f);
  f.ls.ctx.flows--;
  f.pending.length = 0;
  try {
    f.upstream?.close();
  } catch {
    // already closed
  }
  f.upstream = null;
}

/** At the flow cap: close the least recently used flow to make room for a new one. */
function evictOldest(ctx: UdpContext): boolean {
  const victim = ctx.lru.oldest;
  if (victim === null) return false;
  ctx.m.evicted.value++;
  if (ctx.now - ctx.capLoggedAt >= CAP_LOG_INTERVAL_MS) {
    ctx.log.warn(`udp flow limit reached (${ctx.maxFlows} flows): closing the least recently used flow`, ctx.capNotLogged > 0 ? { notLogged: ctx.capNotLogged } : {});
    ctx.capLoggedAt = ctx.now;
    ctx.capNotLogged = 0;
  } else ctx.capNotLogged++;
  closeFlow(victim);
  return true;
}

const CAP_LOG_INTERVAL_MS = 60_000;

/**
 * Expire flows idle longer than the timeout (both directions count as activity), oldest first:
 * the first flow in use ends the walk (a flow still waiting for its upstream gets the open
 * timeout, and is passed over).
 */
export function sweepUdp(ctx: UdpContext): void {
  const idle = ctx.idleTimeoutMs;
  const waitingLimit = Math.max(idle, UDP_OPEN_TIMEOUT_MS);
  let f = ctx.lru.oldest;
  while (f !== null && ctx.now - f.lastSeen > idle) {
    const next = f.lruNext as Flow | null;
    // A flow still waiting for its upstream (a tunnel stream can take a while to open) is
    // given the open timeout instead, else a short idle timeout drops its first datagram.
    if (f.upstream !== null || ctx.now - f.lastSeen > waitingLimit) {
      ctx.m.flowsExpired.value++;
      closeFlow(f);
    }
    f = next;
  }
}
