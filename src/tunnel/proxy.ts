// /libp2p/tunnel-proxy/1.0.0, both ends: the opener sends CONNECT and waits for SUCCESS or
// FAILED; the receiver reads the CONNECT, asks the handler (the hot path, which checks its
// table and dials), and answers. After SUCCESS the stream carries payload only, and it is the
// hot path's. Bad headers, refusals and limit hits are answered FAILED and counted. The stream
// limits apply to TCP and UDP streams separately (limits.ts); an incoming stream is counted
// once its CONNECT says which it is (until then libp2p's per-connection stream cap and the
// header timeout bound it).
import type { Connection, PeerId, Stream } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Libp2p } from "libp2p";
import type { LogLimiter, Logger } from "../log/index.ts";
import type { Counter, MetricsRegistry } from "../metrics/index.ts";
import { decodeProxyBody, encodeProxy, MsgType } from "./codec.ts";
import {
  FEATURE_EARLY_DATA,
  FEATURE_UDP_FRAMED,
  FEATURE_UDP_MUX,
  HEADER_TIMEOUT_MS,
  OPEN_TIMEOUT_MS,
  PROXY_PROTOCOL,
} from "./constants.ts";
import { TunnelError } from "./errors.ts";
import { limitLogger } from "./limit-log.ts";
import { newStreamLazy, readHeader, readSelected, replyAndClose } from "./header-io.ts";
import { STREAM_CLASSES, StreamBudget, type LimitHit, type StreamClass } from "./limits.ts";
import type { PeerBook } from "./peers.ts";
import type { OpenedProxyStream, ProxyHandler, ProxyHeader, ProxyTarget, StreamLimits } from "./types.ts";

const FAILED = encodeProxy({ type: MsgType.FAILED });

export interface ProxyServiceOptions {
  libp2p: Libp2p;
  book: PeerBook;
  /** Per class (TCP, UDP): streams open at once in total, and with one peer. */
  maxStreams: number;
  maxStreamsPerPeer: number;
  /**
   * false: speak EdgeMesh's wire format only (no header extensions: no early data, no UDP
   * framing or multiplexing), offered or answered. Default true.
   */
  extensions?: boolean;
  log: Logger;
  metrics: MetricsRegistry;
}

export class ProxyService {
  #handler: ProxyHandler | undefined;
  readonly #budget: StreamBudget;
  readonly #ext: boolean;
  readonly #limitLog: LogLimiter;
  /**
   * Peer ID -> the libp2p connection on which its agent accepted early data. Per connection, not
   * per peer: a compat-mode peer ID follows the node name, so the node may come back as an
   * EdgeMesh agent (which would drop early bytes), but never on the same connection.
   */
  readonly #earlyOn = new Map<string, string>();
  readonly #c: Record<"opened" | "openFailed" | "refused" | "badHeader" | "accepted" | "early", Counter>;
  readonly #limitHits: Record<StreamClass, Counter>;

  constructor(private readonly o: ProxyServiceOptions) {
    const m = o.metrics;
    this.#budget = new StreamBudget(o.maxStreams, o.maxStreamsPerPeer);
    this.#limitLog = limitLogger(o.log, m);
    this.#ext = o.extensions !== false;
    this.#c = {
      opened: m.counter("tunnel_proxy_streams_opened_total", "Proxy streams opened to other agents"),
      openFailed: m.counter("tunnel_proxy_open_failures_total", "Proxy streams that could not be opened or were refused"),
      accepted: m.counter("tunnel_proxy_streams_accepted_total", "Proxy streams accepted from other agents"),
      refused: m.counter("tunnel_proxy_refused_total", "Incoming CONNECTs answered FAILED by the handler"),
      badHeader: m.counter("tunnel_proxy_bad_header_total", "Incoming proxy streams with a malformed, oversized or missing header"),
      early: m.counter("tunnel_proxy_early_data_streams_total", "Proxy streams opened with payload allowed before the answer (early data)"),
    };
    const limitHelp = "Proxy streams refused by the stream limits (per class: TCP and UDP have a budget each)";
    this.#limitHits = { tcp: m.counter("tunnel_proxy_stream_limit_total", limitHelp, { protocol: "tcp" }), udp: m.counter("tunnel_proxy_stream_limit_total", limitHelp, { protocol: "udp" }) };
    m.gaugeFn("tunnel_proxy_streams_open", "Proxy streams open now", () => this.#budget.open.tcp + this.#budget.open.udp);
    for (const cls of STREAM_CLASSES) {
      const labels = { protocol: cls };
      m.gaugeFn("tunnel_proxy_streams_open_by_protocol", "Proxy streams open now, by the protocol they carry", () => this.#budget.open[cls], labels);
      m.gaugeFn("tunnel_proxy_streams_max", "Limit on proxy streams open at once, per protocol (tunnelLimitConfig)", () => o.maxStreams, labels);
      m.gaugeFn("tunnel_proxy_peer_streams_max", "Limit on proxy streams open at once with one peer, per protocol (tunnelLimitConfig)", () => o.maxStreamsPerPeer, labels);
    }
    m.gaugeFamily("tunnel_proxy_peer_streams", "Proxy streams open now with each peer, per protocol", () => {
      const out: [Record<string, string>, number][] = [];
      for (const [peer, n] of this.#budget.peers()) {
        const node = o.book.nodeOf(peer) ?? peer;
        for (const cls of STREAM_CLASSES) out.push([{ peer: node, protocol: cls }, n[cls]]);
      }
      return out;
    });
  }

  set handler(h: ProxyHandler) {
    this.#handler = h;
  }

  /** Open streams with `peer` and the limits, per protocol. */
  limitsOf(peer: string): StreamLimits {
    const n = this.#budget.of(peer);
    const b = this.#budget;
    return {
      tcp: { open: n.tcp, max: b.maxPerPeer, agentOpen: b.open.tcp, agentMax: b.max },
      udp: { open: n.udp, max: b.maxPerPeer, agentOpen: b.open.udp, agentMax: b.max },
    };
  }

  /** A limit was hit: counted, and one log line per peer per minute. */
  #hit(peer: string, cls: StreamClass, which: LimitHit, direction: "in" | "out"): void {
    this.#limitHits[cls].value++;
    const notLogged = this.#limitLog.admit(peer, "stream limit reached");
    if (notLogged < 0) return;
    const b = this.#budget;
    this.o.log.warn(`${cls} stream limit reached (${which === "peer" ? `${b.maxPerPeer} per peer` : `${b.max} in total`}): stream refused`, {
      peer: this.o.book.nodeOf(peer) ?? peer,
      direction,
      open: which === "peer" ? b.of(peer)[cls] : b.open[cls],
      ...(notLogged > 0 ? { notLogged } : {}),
    });
  }

  /** Counts the stream against its class's limits until it closes; false when one is reached. */
  #track(stream: Stream, peer: string, cls: StreamClass, direction: "in" | "out"): boolean {
    const hit = this.#budget.take(peer, cls);
    if (hit !== null) {
      this.#hit(peer, cls, hit, direction);
      return false;
    }
    stream.addEventListener("close", () => this.#budget.release(peer, cls), { once: true });
    return true;
  }

  /**
   * Opens a proxy stream and resolves once SUCCESS arrived. `early` (TCP) is called right after
   * CONNECT went out when the far agent accepted early data on this connection before: bytes the
   * caller sends on the stream then travel before the answer (lost if the answer is FAILED).
   */
  async open(node: string, target: ProxyTarget, signal?: AbortSignal, early?: (stream: Stream) => void): Promise<OpenedProxyStream> {
    const id = await this.o.book.peerOf(node);
    if (!id) throw new TunnelError("NO_PEER", `no peer ID known for node ${node} (secure mode needs addPeer or discovery)`);
    const cls: StreamClass = target.protocol;
    const full = this.#budget.full(id, cls);
    if (full !== null) {
      this.#hit(id, cls, full, "out");
      throw limitError(cls, full, node);
    }
    const peer = peerIdFromString(id);
    await this.#ensureAddrs(peer);
    const timeout = AbortSignal.timeout(OPEN_TIMEOUT_MS);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let stream: Stream;
    let conn: Connection;
    let lazy: boolean;
    try {
      // libp2p's dialProtocol in two steps, to know which connection carries the stream, and
      // with a lazy protocol select: the select lines go out together with our CONNECT.
      const opts = { runOnLimitedConnection: true, signal: sig };
      conn = await this.o.libp2p.dial(peer, opts);
      ({ stream, lazy } = await newStreamLazy(conn, PROXY_PROTOCOL, opts));
    } catch (err) {
      this.#c.openFailed.value++;
      throw new TunnelError("NO_PEER", `cannot open a proxy stream to node ${node} (${id}): ${(err as Error).message}`);
    }
    if (!this.#track(stream, id, cls, "out")) {
      const hit = this.#budget.full(id, cls) ?? "peer";
      stream.abort(new TunnelError("STREAM_LIMIT", "stream limit"));
      throw limitError(cls, hit, node);
    }
    const udp = target.protocol === "udp";
    const features = !this.#ext ? undefined : udp ? FEATURE_UDP_FRAMED | FEATURE_UDP_MUX : FEATURE_EARLY_DATA;
    let reply;
    try {
      stream.send(encodeProxy({ type: MsgType.CONNECT, protocol: target.protocol, nodeName: node, ip: target.ip, port: target.port, features }));
      if (!udp && this.#ext && early !== undefined && this.#earlyOn.get(id) === conn.id) {
        this.#c.early.value++;
        early(stream);
      }
      if (lazy) await readSelected(stream, PROXY_PROTOCOL, OPEN_TIMEOUT_MS);
      reply = await readHeader(stream, decodeProxyBody, OPEN_TIMEOUT_MS);
    } catch (err) {
      this.#c.openFailed.value++;
      stream.abort(err as Error);
      throw err instanceof TunnelError ? err : new TunnelError("CLOSED", `proxy handshake with node ${node} failed: ${(err as Error).message}`);
    }
    if (reply.type !== MsgType.SUCCESS) {
      this.#c.openFailed.value++;
      stream.abort(new TunnelError("PROXY_REFUSED", "FAILED"));
      throw new TunnelError("PROXY_REFUSED", `node ${node} refused ${target.protocol} ${target.ip}:${target.port}`);
    }
    this.#c.opened.value++;
    // Only what we offered counts as accepted (an answer claiming more is not trusted).
    const accepted = (reply.acceptedFeatures ?? 0) & (features ?? 0);
    if (!udp) {
      if ((accepted & FEATURE_EARLY_DATA) !== 0) this.#earlyOn.set(id, conn.id);
      else this.#earlyOn.delete(id);
    }
    const udpFramed = udp && (accepted & FEATURE_UDP_FRAMED) !== 0;
    const udpMux = udpFramed && (accepted & FEATURE_UDP_MUX) !== 0;
    return { stream, udpFramed, udpMux, relayed: isRelayed(this.o.libp2p, peer) };
  }

  /** Registered with libp2p.handle(PROXY_PROTOCOL). Never throws. */
  onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const remotePeer = connection.remotePeer.toString();
    let msg;
    try {
      msg = await readHeader(stream, decodeProxyBody, HEADER_TIMEOUT_MS);
    } catch (err) {
      this.#c.badHeader.value++;
      this.o.log.warn("proxy stream refused: bad header", { peer: remotePeer, error: err as Error });
      await replyAndClose(stream, FAILED);
      return;
    }
    const protocol = msg.protocol;
    const port = msg.port ?? -1;
    if (msg.type !== MsgType.CONNECT || (protocol !== "tcp" && protocol !== "udp") || !msg.ip || port < 1 || port > 65535) {
      this.#c.badHeader.value++;
      this.o.log.warn("proxy stream refused: not a usable CONNECT", { peer: remotePeer, type: msg.type, protocol, ip: msg.ip, port: msg.port });
      await replyAndClose(stream, FAILED);
      return;
    }
    if (!this.#track(stream, remotePeer, protocol, "in")) {
      await replyAndClose(stream, FAILED);
      return;
    }
    // With extensions off we answer as EdgeMesh does: every offer ignored.
    const offered = this.#ext ? (msg.features ?? 0) : 0;
    const udpFramed = protocol === "udp" && (offered & FEATURE_UDP_FRAMED) !== 0;
    const udpMux = udpFramed && (offered & FEATURE_UDP_MUX) !== 0;
    // Payload behind a TCP CONNECT waits in the stream (readHeader puts it back) until the
    // handler's splice reads it, after its local dial: we can take early data.
    const earlyData = protocol === "tcp" && (offered & FEATURE_EARLY_DATA) !== 0;
    const header: ProxyHeader = { protocol, ip: msg.ip, port, nodeName: msg.nodeName ?? "", remotePeer, remoteNode: this.o.book.nodeOf(remotePeer), udpFramed, udpMux };
    let accepted = false;
    const release = holdWrites(stream);
    try {
      const r = this.#handler ? this.#handler(header, stream) : false;
      accepted = r instanceof Promise ? await r : r;
    } catch (err) {
      this.o.log.error("proxy handler threw", { peer: remotePeer, target: `${header.ip}:${header.port}`, error: err as Error });
    }
    if (!accepted) {
      release(undefined);
      this.#c.refused.value++;
      await replyAndClose(stream, FAILED);
      return;
    }
    try {
      const acceptedFeatures = (udpFramed ? FEATURE_UDP_FRAMED : 0) | (udpMux ? FEATURE_UDP_MUX : 0) | (earlyData ? FEATURE_EARLY_DATA : 0);
      release(encodeProxy({ type: MsgType.SUCCESS, acceptedFeatures: acceptedFeatures === 0 ? undefined : acceptedFeatures }));
      this.#c.accepted.value++;
    } catch (err) {
      stream.abort(err as Error);
    }
  };

  /** Like EdgeMesh: an unknown peer is reachable through every relay. */
  async #ensureAddrs(peer: PeerId): Promise<void> {
    // Connected already: the stream goes over that connection and no address is dialed. This
    // skips, on every open, building the circuit multiaddrs and a peer-store merge (which
    // serialises a burst of opens on the store's write lock).
    if (this.o.libp2p.getConnections(peer).length > 0) return;
    const circuits = this.o.book.circuitAddrs(peer.toString());
    if (circuits.length === 0) return;
    await this.o.libp2p.peerStore.merge(peer, { multiaddrs: circuits });
  }
}

/**
 * While the handler decides, anything it (or a splice it already started) writes is queued, so
 * no payload byte can reach the opener before SUCCESS. An own `send` shadows the prototype's
 * for that short time; `release(first)` restores it, sends `first` (SUCCESS), then the queue.
 * `release(undefined)` drops the queue (the answer is FAILED).
 */
function holdWrites(stream: Stream): (first: Uint8Array | undefined) => void {
  type Chunk = Parameters<Stream["send"]>[0];
  const queued: Chunk[] = [];
  const target = stream as unknown as { send: (data: Chunk) => boolean };
  target.send = (data: Chunk) => {
    queued.push(data);
    return true;
  };
  return (first) => {
    delete (target as { send?: unknown }).send;
    if (!first) return;
    stream.send(first);
    for (const data of queued) stream.send(data);
  };
}

function limitError(cls: StreamClass, hit: LimitHit, node: string): TunnelError {
  return new TunnelError("STREAM_LIMIT", `${cls} stream limit reached (${hit === "peer" ? "per peer" : "in total"}) for node ${node}`);
}

function isRelayed(libp2p: Libp2p, peer: PeerId): boolean {
  const conns = libp2p.getConnections(peer);
  return conns.length > 0 && conns.every((c) => c.remoteAddr.toString().includes("/p2p-circuit"));
}
