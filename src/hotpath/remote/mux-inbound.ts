// The far end of multiplexed UDP streams (FEATURE_UDP_MUX): each OPEN from a peer agent becomes a
// connected UDP socket to the endpoint (one per flow, so the endpoint sees each flow as its own
// client port), checked like a CONNECT: the target must be an endpoint the current table places
// on this node, else the flow is refused with a CLOSE. Sockets expire after the idle timeout and
// are bounded per peer and in total; at a bound the peer's least recently used flow is closed to
// make room (counted, logged at most once per peer per minute). Datagrams are copied to the
// socket from the frame without a view (scratch.ts); replies go out as DATA frames.

import type { udp } from "bun";
import type { TableSource } from "../../control/index.ts";
import type { Logger, LogLimiter } from "../../log/index.ts";
import type { Counter, MetricsRegistry } from "../../metrics/index.ts";
import type { ProxyHeader, TunnelStream } from "../../tunnel/index.ts";
import { limitLogger } from "../../tunnel/limit-log.ts";
import { UDP_PENDING_MAX } from "../constants.ts";
import { LruList, type LruEntry } from "../lru.ts";
import { closeFrame, dataPrefix, MUX_CLOSE_ERROR, MUX_CLOSE_EVICTED, MUX_CLOSE_IDLE, MUX_CLOSE_REFUSED } from "./mux-frames.ts";
import { MuxStream } from "./mux-stream.ts";
import { datagramView } from "./scratch.ts";
import type { LocalTargets } from "./targets.ts";
import { UDP_FLOWS_PER_PEER_DEFAULT } from "./udp-peers.ts";

/** Default bound on the far sockets of all peers' flows together (each holds a descriptor). */
export const UDP_INBOUND_FLOWS_DEFAULT = 16_384;

export interface MuxInboundOptions {
  table: TableSource;
  targets: LocalTargets;
  idleTimeoutMs: number;
  maxFlowsPerPeer?: number;
  maxFlows?: number;
  log: Logger;
  metrics: MetricsRegistry;
}

export interface MuxInbound {
  /** Take a UDP stream whose CONNECT was accepted with FEATURE_UDP_MUX. */
  adopt(header: ProxyHeader, stream: TunnelStream): void;
  /** Flows (far sockets) open now for `peer` (a peer ID) and the bound. */
  flowsOf(peer: string): { open: number; max: number };
  /** Close flows idle past the timeout; `now` is the caller's coarse clock. */
  sweep(now: number): void;
  readonly total: number;
  stop(): void;
}

interface Metrics {
  opened: Counter;
  refused: Counter;
  expired: Counter;
  evicted: Counter;
  unknownFlow: Counter;
  protocolErrors: Counter;
  sendErrors: Counter;
  dropped: Counter;
}

/** One flow: a connected socket to the endpoint. */
class Relay implements LruEntry {
  lruPrev: LruEntry | null = null;
  lruNext: LruEntry | null = null;
  sock: udp.ConnectedSocket<"uint8array"> | null = null;
  /** Datagrams that came before the socket was bound (copies; once per flow, at its start). */
  pending: Uint8Array[] | null = null;
  closed = false;
  readonly prefix: Uint8Array;
  constructor(
    readonly s: FarStream,
    readonly id: number,
    public lastSeen: number,
  ) {
    this.prefix = dataPrefix(id);
  }
  /** A reply from the endpoint: back to the opener as a DATA frame. */
  fromEndpoint(buf: Uint8Array): void {
    if (this.closed) return;
    const o = this.s.owner;
    this.lastSeen = o.now;
    this.s.peer.lru.touch(this);
    if (!this.s.sendData(this.prefix, buf)) o.m.dropped.value++;
  }
}

class PeerState {
  readonly lru = new LruList<Relay>();
  readonly streams = new Set<FarStream>();
  constructor(
    readonly id: string,
    readonly node: string,
  ) {}
}

class FarStream extends MuxStream {
  readonly flows = new Map<number, Relay>();
  constructor(
    readonly owner: Inbound,
    readonly peer: PeerState,
    stream: TunnelStream,
  ) {
    super(stream);
  }

  onOpen(flow: number, ip: string, port: number): void {
    const o = this.owner;
    if (this.flows.has(flow)) {
      this.reader.error = `flow ${flow} opened twice`;
      return;
    }
    if (port === 0 || !o.o.targets.has(o.o.table.current(), "UDP", ip, port)) {
      o.m.refused.value++;
      this.sendControl(closeFrame(flow, MUX_CLOSE_REFUSED));
      return;
    }
    if (!o.makeRoom(this.peer)) {
      o.m.refused.value++;
      this.sendControl(closeFrame(flow, MUX_CLOSE_REFUSED));
      return;
    }
    const r = new Relay(this, flow, o.now);
    this.flows.set(flow, r);
    this.peer.lru.push(r);
    o.total++;
    o.m.opened.value++;
    Bun.udpSocket({
      binaryType: "uint8array",
      connect: { hostname: ip, port },
      socket: {
        data: (_s, buf) => r.fromEndpoint(buf),
        error: () => {
          o.m.sendErrors.value++;
        },
      },
    }).then(
      (sock) => o.bound(r, sock),
      () => {
        o.m.sendErrors.value++;
        o.closeRelay(r, MUX_CLOSE_ERROR, true);
      },
    );
  }

  onData(flow: number, buf: Uint8Array, off: number, len: number): void {
    const r = this.flows.get(flow);
    const o = this.owner;
    if (r === undefined) {
      o.m.unknownFlow.value++;
      return;
    }
    r.lastSeen = o.now;
    this.peer.lru.touch(r);
    const sock = r.sock;
    if (sock === null) {
      const q = (r.pending ??= []);
      if (q.length < UDP_PENDING_MAX) q.push(buf.slice(off, off + len));
      else o.m.dropped.value++;
      return;
    }
    try {
      if (!sock.send(datagramView(buf, off, len))) o.m.dropped.value++;
    } catch {
      o.m.sendErrors.value++;
    }
  }

  onClose(flow: number): void {
    const r = this.flows.get(flow);
    if (r !== undefined) this.owner.closeRelay(r, MUX_CLOSE_IDLE, false);
  }

  onProtocolError(why: string): void {
    this.owner.m.protocolErrors.value++;
    this.owner.o.log.warn("udp mux stream reset: bad frame from the peer", { peer: this.peer.node, error: why });
  }

  onGone(): void {
    const o = this.owner;
    for (const r of [...this.flows.values()]) o.closeRelay(r, MUX_CLOSE_IDLE, false);
    this.peer.streams.delete(this);
    if (this.peer.streams.size === 0 && this.peer.lru.size === 0) o.peers.delete(this.peer.id);
  }
}

class Inbound implements MuxInbound {
  readonly peers = new Map<string, PeerState>();
  readonly m: Metrics;
  readonly maxPerPeer: number;
  readonly max: number;
  total = 0;
  now = Date.now();
  readonly #limitLog: LogLimiter;

  constructor(readonly o: MuxInboundOptions) {
    const mx = o.metrics;
    this.maxPerPeer = o.maxFlowsPerPeer ?? UDP_FLOWS_PER_PEER_DEFAULT;
    this.max = o.maxFlows ?? UDP_INBOUND_FLOWS_DEFAULT;
    this.#limitLog = limitLogger(o.log, mx);
    const c = (name: string, help: string, labels?: Record<string, string>) => mx.counter(name, help, labels);
    this.m = {
      opened: c("proxy_inbound_udp_mux_flows_total", "UDP flows opened by peer agents over multiplexed streams"),
      refused: c("proxy_inbound_udp_mux_refused_total", "UDP flows of peer agents refused (not a local endpoint, or the flow limits)"),
      expired: c("proxy_inbound_udp_expired_total", "Inbound UDP relays closed after idling"),
      evicted: c("proxy_inbound_udp_evicted_total", "Inbound UDP flows closed to make room for a new one (least recently used first)"),
      unknownFlow: c("proxy_inbound_udp_mux_unknown_flow_total", "Datagrams for a flow no longer known (crossed its CLOSE), dropped"),
      protocolErrors: c("proxy_udp_mux_protocol_errors_total", "Multiplexed UDP streams reset for a framing error", { side: "far" }),
      sendErrors: c("proxy_inbound_udp_errors_total", "Inbound UDP send errors"),
      dropped: c("proxy_inbound_udp_dropped_total", "Datagrams of multiplexed flows dropped (queue full, socket not ready)"),
    };
    mx.gaugeFn("proxy_inbound_udp_peer_flows_max", "Limit on far sockets for one peer's UDP flows", () => this.maxPerPeer);
    mx.gaugeFn("proxy_inbound_udp_flows_max", "Limit on far sockets for all peers' UDP flows", () => this.max);
    mx.gaugeFamily("proxy_inbound_udp_peer_flows", "Far sockets open now for each peer's multiplexed UDP flows", () =>
      [...this.peers.values()].map((p) => [{ peer: p.node }, p.lru.size] as const),
    );
  }

  adopt(h: ProxyHeader, stream: TunnelStream): void {
    let p = this.peers.get(h.remotePeer);
    if (p === undefined) this.peers.set(h.remotePeer, (p = new PeerState(h.remotePeer, h.remoteNode ?? h.remotePeer)));
    const s = new FarStream(this, p, stream);
    p.streams.add(s);
    s.attach();
  }

  flowsOf(peer: string): { open: number; max: number } {
    return { open: this.peers.get(peer)?.lru.size ?? 0, max: this.maxPerPeer };
  }

  /** Room for one more flow of `p`: closes its least recently used one at a bound. */
  makeRoom(p: PeerState): boolean {
    if (p.lru.size < this.maxPerPeer && this.total < this.max) return true;
    const victim = p.lru.oldest;
    if (victim === null) return false; // the agent-wide bound, and this peer holds nothing
    this.m.evicted.value++;
    const notLogged = this.#limitLog.admit(p.id, "udp flow limit reached");
    if (notLogged >= 0) {
      const which = p.lru.size >= this.maxPerPeer ? `${this.maxPerPeer} per peer` : `${this.max} in total`;
      this.o.log.warn(`inbound udp flow limit reached (${which}): closing the peer's least recently used flow`, { peer: p.node, ...(notLogged > 0 ? { notLogged } : {}) });
    }
    this.closeRelay(victim, MUX_CLOSE_EVICTED, true);
    return true;
  }

  bound(r: Relay, sock: udp.ConnectedSocket<"uint8array">): void {
    if (r.closed) {
      sock.close();
      return;
    }
    r.sock = sock;
    const q = r.pending;
    r.pending = null;
    if (q === null) return;
    for (const d of q) {
      try {
        if (!sock.send(d)) this.m.dropped.value++;
      } catch {
        this.m.sendErrors.value++;
      }
    }
  }

  closeRelay(r: Relay, reason: number, tellPeer: boolean): void {
    if (r.closed) return;
    r.closed = true;
    const s = r.s;
    s.flows.delete(r.id);
    s.peer.lru.remove(r);
    this.total--;
    r.pending = null;
    try {
      r.sock?.close();
    } catch {
      // already closed
    }
    r.sock = null;
    if (tellPeer) s.sendControl(closeFrame(r.id, reason));
  }

  sweep(now: number): void {
    this.now = now;
    const idle = this.o.idleTimeoutMs;
    for (const p of this.peers.values()) {
      // Oldest first: the first flow still in use ends the walk.
      for (let r = p.lru.oldest; r !== null && now - r.lastSeen > idle; r = p.lru.oldest) {
        this.m.expired.value++;
        this.closeRelay(r, MUX_CLOSE_IDLE, true);
      }
    }
  }

  stop(): void {
    for (const p of this.peers.values()) for (const s of [...p.streams]) s.reset();
    this.peers.clear();
  }
}

export function createMuxInbound(o: MuxInboundOptions): MuxInbound {
  return new Inbound(o);
}
