// UDP flows to endpoints on other nodes, the opener's side. Between two of our agents every flow
// to a node rides one long-lived multiplexed stream (mux-frames.ts): a new flow costs an OPEN
// frame, no stream and no round trip. The first flow to a node opens a UDP stream whose CONNECT
// offers the multiplexing; until the answer, later flows to that node wait (their datagrams
// queue in the proxy's flow). An EdgeMesh agent (or one of ours told to speak only EdgeMesh's
// format) answers without it: then each flow gets a stream of its own, as EdgeMesh does, and
// those streams count against the tunnel's UDP stream budget, never TCP's.
//
// Each node's flows are bounded (maxFlowsPerPeer); at the bound the least recently used flow is
// closed to make room, and so is the oldest per-flow stream when the tunnel's UDP budget for
// that node is spent: a burst of short flows (DNS, syslog, CoAP) recycles idle ones instead of
// being refused. Both are counted and logged at most once per node per minute.

import type { Logger, LogLimiter } from "../../log/index.ts";
import type { Counter, MetricsRegistry } from "../../metrics/index.ts";
// The tunnel's leaf modules for values, its index for types only: the index loads libp2p, Noise
// and yamux (~30 MiB of RSS), which a proxy without a tunnel (dev mode, the bench proxy) never uses.
import { TunnelError } from "../../tunnel/errors.ts";
import type { OpenedProxyStream, Tunnel } from "../../tunnel/index.ts";
import { limitLogger } from "../../tunnel/limit-log.ts";
import { LruList, type LruEntry } from "../lru.ts";
import type { DatagramChannel, DatagramSink } from "../types.ts";
import { StreamDatagrams } from "./datagrams.ts";
import { closeFrame, dataPrefix, MUX_CLOSE_ERROR, MUX_CLOSE_EVICTED, MUX_CLOSE_IDLE, MUX_CLOSE_REFUSED, openFrame } from "./mux-frames.ts";
import { MuxStream } from "./mux-stream.ts";
import { datagramView } from "./scratch.ts";
import { UDP_FLOWS_EXPIRED_HELP } from "../constants.ts";

/** A multiplexed stream with no flow for this long is closed (a new flow opens another). */
export const UDP_MUX_STREAM_IDLE_MS = 120_000;
/** Default bound on one node's UDP flows (each holds a socket on the far agent). */
export const UDP_FLOWS_PER_PEER_DEFAULT = 4096;
/** Largest flow id; a stream that used them all is replaced (2^32 - 1 flows: never, in practice). */
const MAX_FLOW_ID = 0xffffffff;

const WAITING = 0;
const BOUND = 1;
const CLOSED = 2;

export interface UdpPeersOptions {
  tunnel: Pick<Tunnel, "openProxyStream">;
  log: Logger;
  metrics: MetricsRegistry;
  maxFlowsPerPeer?: number;
  /** Checks idle multiplexed streams this often (default 5 s). */
  sweepIntervalMs?: number;
  /** Told of every stream opened for UDP, and every open that failed (the dialer's counters). */
  streams?: { opened(node: string, opened: OpenedProxyStream): void; failed(node: string): void };
}

export interface UdpPeers {
  dial(node: string, ip: string, port: number, sink: DatagramSink): void;
  /** Flows open now to `node` and the bound, for /peers. */
  flowsTo(node: string): { open: number; max: number };
  stop(): void;
}

interface Metrics {
  evicted: Counter;
  refused: Counter;
  unknownFlow: Counter;
  protocolErrors: Counter;
  muxStreams: Counter;
  legacyFlows: Counter;
  expired: Counter;
}

/** One UDP flow to an endpoint on another node; the proxy's flow is its sink. */
class PeerFlow implements DatagramChannel, LruEntry {
  lruPrev: LruEntry | null = null;
  lruNext: LruEntry | null = null;
  state = WAITING;
  id = 0;
  prefix: Uint8Array | null = null;
  /** Set when the flow rides the node's multiplexed stream. */
  mux: OpenerStream | null = null;
  /** Set when the flow has a stream of its own (an EdgeMesh-format peer). */
  own: StreamDatagrams | null = null;
  /** A per-flow stream open was refused by the UDP stream budget once and retried. */
  retried = false;
  constructor(
    readonly peer: Peer,
    readonly ip: string,
    readonly port: number,
    readonly sink: DatagramSink,
  ) {}

  send(d: Uint8Array): boolean {
    const mux = this.mux;
    if (mux !== null) {
      this.peer.lru.touch(this);
      return mux.sendData(this.prefix!, d);
    }
    const own = this.own;
    if (own === null) return false;
    this.peer.lru.touch(this);
    return own.send(d);
  }

  /** The proxy closes the flow (idle, evicted, its listener gone). */
  close(): void {
    this.peer.owner.closeFlow(this, MUX_CLOSE_IDLE, false, undefined);
  }
}

/** The sink of a flow's own stream: passes datagrams on, notices the stream's end. */
class OwnStreamSink implements DatagramSink {
  constructor(readonly f: PeerFlow) {}
  open(): void {}
  fail(): void {}
  datagram(d: Uint8Array): void {
    if (this.f.state !== BOUND) return;
    this.f.peer.lru.touch(this.f);
    this.f.sink.datagram(d);
  }
  close(error?: Error): void {
    this.f.peer.owner.closeFlow(this.f, MUX_CLOSE_IDLE, true, error);
  }
}

class Peer {
  readonly lru = new LruList<PeerFlow>();
  /** The multiplexed stream, once the far agent took one. */
  conn: OpenerStream | null = null;
  /** A CONNECT offering the multiplexing is out; flows wait in `waiting`. */
  probing = false;
  waiting: PeerFlow[] = [];
  /** The far agent answered without multiplexing: a stream per flow. */
  perFlow = false;
  constructor(
    readonly owner: Manager,
    readonly node: string,
  ) {}
}

/** The opener's multiplexed stream to one node. */
class OpenerStream extends MuxStream {
  readonly flows = new Map<number, PeerFlow>();
  nextId = 1;
  emptySince: number;
  constructor(
    readonly peer: Peer,
    opened: OpenedProxyStream,
  ) {
    super(opened.stream);
    this.emptySince = Date.now();
  }
  onData(flow: number, buf: Uint8Array, off: number, len: number): void {
    const f = this.flows.get(flow);
    if (f === undefined) {
      this.peer.owner.m.unknownFlow.value++; // a reply that crossed our CLOSE
      return;
    }
    this.peer.lru.touch(f);
    f.sink.datagram(datagramView(buf, off, len));
  }
  onOpen(): void {
    // Only the opener opens flows: the far agent broke the protocol.
    this.reader.error = "OPEN from the far agent";
    this.protocolError();
  }
  onClose(flow: number, reason: number): void {
    const f = this.flows.get(flow);
    if (f === undefined) return;
    if (reason === MUX_CLOSE_REFUSED) this.peer.owner.m.refused.value++;
    else if (reason === MUX_CLOSE_IDLE) this.peer.owner.m.expired.value++; // the far agent's idle expiry
    this.peer.owner.closeFlow(f, reason, true, undefined, false);
  }
  onProtocolError(why: string): void {
    this.peer.owner.m.protocolErrors.value++;
    this.peer.owner.log.warn("udp mux stream reset: bad frame from the far agent", { node: this.peer.node, error: why });
  }
  onGone(error: Error | undefined): void {
    const o = this.peer.owner;
    if (this.peer.conn === this) this.peer.conn = null;
    o.m.muxStreams.value--;
    for (const f of [...this.flows.values()]) o.closeFlow(f, MUX_CLOSE_ERROR, true, error, false);
  }
}

class Manager implements UdpPeers {
  readonly peers = new Map<string, Peer>();
  readonly m: Metrics;
  readonly log: Logger;
  readonly max: number;
  readonly #limitLog: LogLimiter;
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(readonly o: UdpPeersOptions) {
    const mx = o.metrics;
    this.log = o.log;
    this.max = o.maxFlowsPerPeer ?? UDP_FLOWS_PER_PEER_DEFAULT;
    this.#limitLog = limitLogger(o.log, mx);
    this.m = {
      evicted: mx.counter("proxy_udp_flows_evicted_total", "UDP flows closed to make room for a new one (least recently used first)", { limit: "peer" }),
      refused: mx.counter("proxy_udp_mux_flows_refused_total", "UDP flows the far agent refused (not an endpoint there, or its limits)"),
      unknownFlow: mx.counter("proxy_udp_mux_unknown_flow_total", "Datagrams for a flow no longer known (crossed its CLOSE), dropped"),
      protocolErrors: mx.counter("proxy_udp_mux_protocol_errors_total", "Multiplexed UDP streams reset for a framing error", { side: "opener" }),
      muxStreams: mx.gauge("proxy_udp_mux_streams", "Multiplexed UDP streams open to other agents (one per node at most)"),
      legacyFlows: mx.counter("proxy_udp_own_stream_flows_total", "UDP flows given a stream of their own (the far agent speaks EdgeMesh's format)"),
      // The proxy's own series: a tunnel flow idles out here or, first, at the far agent.
      expired: mx.counter("proxy_udp_flows_expired_total", UDP_FLOWS_EXPIRED_HELP),
    };
    mx.gaugeFn("proxy_udp_peer_flows_max", "Limit on UDP flows to one node", () => this.max);
    mx.gaugeFamily("proxy_udp_peer_flows", "UDP flows open now to each node", () => [...this.peers.values()].map((p) => [{ peer: p.node }, p.lru.size] as const));
    this.#timer = setInterval(() => this.#sweep(), o.sweepIntervalMs ?? 5_000);
    this.#timer.unref?.();
  }

  dial(node: string, ip: string, port: number, sink: DatagramSink): void {
    let p = this.peers.get(node);
    if (p === undefined) this.peers.set(node, (p = new Peer(this, node)));
    if (p.lru.size >= this.max) this.#evict(p, "flows per node");
    const f = new PeerFlow(p, ip, port, sink);
    p.lru.push(f);
    if (p.conn !== null) return this.#bindMux(p.conn, f);
    if (p.perFlow) return this.#open(f);
    p.waiting.push(f);
    if (!p.probing) {
      p.probing = true;
      this.#open(f);
    }
  }

  flowsTo(node: string): { open: number; max: number } {
    return { open: this.peers.get(node)?.lru.size ?? 0, max: this.max };
  }

  stop(): void {
    clearInterval(this.#timer);
    for (const p of this.peers.values()) {
      p.conn?.reset();
      for (let f = p.lru.oldest; f !== null; f = p.lru.oldest) this.closeFlow(f, MUX_CLOSE_IDLE, true, undefined);
    }
    this.peers.clear();
  }

  /** One stream for `f` (and, while probing, for the flows waiting behind it). */
  #open(f: PeerFlow): void {
    this.o.tunnel.openProxyStream(f.peer.node, { protocol: "udp", ip: f.ip, port: f.port }).then(
      (opened) => this.#opened(f, opened),
      (err) => this.#failed(f, err instanceof Error ? err : new Error(String(err))),
    );
  }

  #opened(f: PeerFlow, opened: OpenedProxyStream): void {
    const p = f.peer;
    this.o.streams?.opened(p.node, opened);
    if (f === p.waiting[0]) p.probing = false;
    if (opened.udpMux) {
      p.perFlow = false;
      if (p.conn === null) {
        p.conn = new OpenerStream(p, opened);
        this.m.muxStreams.value++;
        p.conn.attach();
      } else {
        opened.stream.abort(new Error("a multiplexed stream to this node exists"));
      }
      const conn = p.conn;
      if (f.state === WAITING) this.#bindMux(conn, f);
      this.#releaseWaiting(p);
      return;
    }
    // The far agent speaks EdgeMesh's format: this stream is f's alone.
    p.perFlow = true;
    if (f.state === WAITING) this.#bindOwn(f, opened);
    else opened.stream.abort(new Error("udp flow closed before its stream opened"));
    const waiting = this.#takeWaiting(p);
    for (const w of waiting) this.#open(w);
  }

  #failed(f: PeerFlow, err: Error): void {
    const p = f.peer;
    this.o.streams?.failed(p.node);
    const wasProbe = f === p.waiting[0];
    if (wasProbe) p.probing = false;
    // Our UDP stream budget for that node is spent (a stream per flow): recycle the oldest flow.
    if (p.perFlow && !wasProbe && f.state === WAITING && !f.retried && err instanceof TunnelError && err.code === "STREAM_LIMIT" && this.#evictOwn(p, f)) {
      f.retried = true;
      return this.#open(f);
    }
    this.#fail(f, err);
    if (!wasProbe) return;
    // The node refused f's target only (a stale table on either side): the others try again.
    const others = this.#takeWaiting(p);
    if (!(err instanceof TunnelError && err.code === "PROXY_REFUSED")) {
      for (const w of others) this.#fail(w, err);
      return;
    }
    const retry = others.filter((w) => w.ip !== f.ip || w.port !== f.port);
    for (const w of others) if (!retry.includes(w)) this.#fail(w, err);
    if (retry.length === 0) return;
    p.waiting = retry;
    p.probing = true;
    this.#open(retry[0]!);
  }

  #takeWaiting(p: Peer): PeerFlow[] {
    const w = p.waiting.filter((x) => x.state === WAITING);
    p.waiting = [];
    return w;
  }

  #releaseWaiting(p: Peer): void {
    const conn = p.conn!;
    for (const w of this.#takeWaiting(p)) this.#bindMux(conn, w);
  }

  #bindMux(conn: OpenerStream, f: PeerFlow): void {
    if (conn.nextId > MAX_FLOW_ID) {
      conn.reset(); // closes its flows; f waits for the next stream
      f.peer.waiting.push(f);
      if (!f.peer.probing) {
        f.peer.probing = true;
        this.#open(f);
      }
      return;
    }
    const id = conn.nextId++;
    f.id = id;
    f.prefix = dataPrefix(id);
    f.mux = conn;
    f.state = BOUND;
    conn.flows.set(id, f);
    conn.sendControl(openFrame(id, f.ip, f.port));
    f.sink.open(f); // the proxy sends what it queued at once, behind the OPEN
  }

  #bindOwn(f: PeerFlow, opened: OpenedProxyStream): void {
    this.m.legacyFlows.value++;
    const ch = new StreamDatagrams(opened.stream, opened.udpFramed);
    f.own = ch;
    f.state = BOUND;
    ch.attach(new OwnStreamSink(f));
    if (f.state === BOUND) f.sink.open(f);
  }

  #fail(f: PeerFlow, err: Error): void {
    if (f.state === CLOSED) return;
    f.state = CLOSED;
    f.peer.lru.remove(f);
    f.sink.fail(err);
  }

  /**
   * Closes `f`: tells the far agent (CLOSE frame, or a reset of its own stream) unless the close
   * came from there, and the proxy's flow when `tellSink`. Idempotent.
   */
  closeFlow(f: PeerFlow, reason: number, tellSink: boolean, error: Error | undefined, tellFar = true): void {
    if (f.state === CLOSED) return;
    const wasWaiting = f.state === WAITING;
    f.state = CLOSED;
    const p = f.peer;
    p.lru.remove(f);
    const mux = f.mux;
    if (mux !== null) {
      f.mux = null;
      mux.flows.delete(f.id);
      if (mux.flows.size === 0) mux.emptySince = Date.now();
      if (tellFar) mux.sendControl(closeFrame(f.id, reason));
    }
    const own = f.own;
    if (own !== null) {
      f.own = null;
      own.close();
    }
    if (!tellSink) return;
    if (wasWaiting) f.sink.fail(error ?? new Error("udp flow closed"));
    else f.sink.close(error);
  }

  /** Make room on `p` by closing its least recently used flow. */
  #evict(p: Peer, which: string): void {
    const victim = p.lru.oldest;
    if (victim === null) return;
    this.m.evicted.value++;
    this.#logLimit(p, which);
    this.closeFlow(victim, MUX_CLOSE_EVICTED, true, undefined);
  }

  /** Close the least recently used flow of `p` that has a stream of its own (not `except`). */
  #evictOwn(p: Peer, except: PeerFlow): boolean {
    for (let e = p.lru.oldest; e !== null; e = e.lruNext as PeerFlow | null) {
      if (e === except || e.own === null) continue;
      this.m.evicted.value++;
      this.#logLimit(p, "udp stream budget");
      this.closeFlow(e, MUX_CLOSE_EVICTED, true, undefined);
      return true;
    }
    return false;
  }

  #logLimit(p: Peer, which: string): void {
    const notLogged = this.#limitLog.admit(p.node, "udp flow limit reached");
    if (notLogged < 0) return;
    this.log.warn(`udp flow limit reached (${which}): closing the least recently used flow`, { node: p.node, flows: p.lru.size, max: this.max, ...(notLogged > 0 ? { notLogged } : {}) });
  }

  #sweep(): void {
    const now = Date.now();
    for (const [node, p] of this.peers) {
      const conn = p.conn;
      if (conn !== null && conn.flows.size === 0 && now - conn.emptySince > UDP_MUX_STREAM_IDLE_MS) conn.reset();
      if (p.conn === null && p.lru.size === 0 && !p.probing) this.peers.delete(node);
    }
  }
}

export function createUdpPeers(o: UdpPeersOptions): UdpPeers {
  return new Manager(o);
}
