// /libp2p/tunnel-proxy/1.0.0, both ends: the opener sends CONNECT and waits for SUCCESS or
// FAILED; the receiver reads the CONNECT, asks the handler (the hot path, which checks its
// table and dials), and answers. After SUCCESS the stream carries payload only, and it is the
// hot path's. Bad headers, refusals and limit hits are answered FAILED and counted.
import type { Connection, PeerId, Stream } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Libp2p } from "libp2p";
import type { Logger } from "../log/index.ts";
import type { Counter, MetricsRegistry } from "../metrics/index.ts";
import { decodeProxyBody, encodeProxy, MsgType } from "./codec.ts";
import { FEATURE_EARLY_DATA, FEATURE_UDP_FRAMED, HEADER_TIMEOUT_MS, OPEN_TIMEOUT_MS, PROXY_PROTOCOL } from "./constants.ts";
import { TunnelError } from "./errors.ts";
import { newStreamLazy, readHeader, readSelected, replyAndClose } from "./header-io.ts";
import type { PeerBook } from "./peers.ts";
import type { OpenedProxyStream, ProxyHandler, ProxyHeader, ProxyTarget } from "./types.ts";

const FAILED = encodeProxy({ type: MsgType.FAILED });

export interface ProxyServiceOptions {
  libp2p: Libp2p;
  book: PeerBook;
  maxStreams: number;
  maxStreamsPerPeer: number;
  log: Logger;
  metrics: MetricsRegistry;
}

export class ProxyService {
  #handler: ProxyHandler | undefined;
  #open = 0;
  readonly #perPeer = new Map<string, number>();
  /**
   * Peer ID -> the libp2p connection on which its agent accepted early data. Per connection, not
   * per peer: a compat-mode peer ID follows the node name, so the node may come back as an
   * EdgeMesh agent (which would drop early bytes), but never on the same connection.
   */
  readonly #earlyOn = new Map<string, string>();
  readonly #c: Record<"opened" | "openFailed" | "refused" | "badHeader" | "limit" | "accepted" | "early", Counter>;

  constructor(private readonly o: ProxyServiceOptions) {
    const m = o.metrics;
    this.#c = {
      opened: m.counter("tunnel_proxy_streams_opened_total", "Proxy streams opened to other agents"),
      openFailed: m.counter("tunnel_proxy_open_failures_total", "Proxy streams that could not be opened or were refused"),
      accepted: m.counter("tunnel_proxy_streams_accepted_total", "Proxy streams accepted from other agents"),
      refused: m.counter("tunnel_proxy_refused_total", "Incoming CONNECTs answered FAILED by the handler"),
      badHeader: m.counter("tunnel_proxy_bad_header_total", "Incoming proxy streams with a malformed, oversized or missing header"),
      limit: m.counter("tunnel_proxy_stream_limit_total", "Proxy streams refused by the stream limits"),
      early: m.counter("tunnel_proxy_early_data_streams_total", "Proxy streams opened with payload allowed before the answer (early data)"),
    };
    m.gaugeFn("tunnel_proxy_streams_open", "Proxy streams open now", () => this.#open);
  }

  set handler(h: ProxyHandler) {
    this.#handler = h;
  }

  streamsTo(peer: string): number {
    return this.#perPeer.get(peer) ?? 0;
  }

  #full(peer: string): boolean {
    return this.#open >= this.o.maxStreams || (this.#perPeer.get(peer) ?? 0) >= this.o.maxStreamsPerPeer;
  }

  /** Counts the stream against the limits until it closes; false when a limit is reached. */
  #track(stream: Stream, peer: string): boolean {
    if (this.#full(peer)) {
      this.#c.limit.value++;
      return false;
    }
    const n = this.#perPeer.get(peer) ?? 0;
    this.#open++;
    this.#perPeer.set(peer, n + 1);
    stream.addEventListener("close", () => {
      this.#open--;
      const left = (this.#perPeer.get(peer) ?? 1) - 1;
      if (left > 0) this.#perPeer.set(peer, left);
      else this.#perPeer.delete(peer);
    });
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
    if (this.#full(id)) {
      this.#c.limit.value++;
      throw new TunnelError("STREAM_LIMIT", `stream limit reached (total ${this.o.maxStreams}, per peer ${this.o.maxStreamsPerPeer}) for node ${node}`);
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
    if (!this.#track(stream, id)) {
      stream.abort(new TunnelError("STREAM_LIMIT", "stream limit"));
      throw new TunnelError("STREAM_LIMIT", `stream limit reached (total ${this.o.maxStreams}, per peer ${this.o.maxStreamsPerPeer}) for node ${node}`);
    }
    const udp = target.protocol === "udp";
    let reply;
    try {
      stream.send(encodeProxy({ type: MsgType.CONNECT, protocol: target.protocol, nodeName: node, ip: target.ip, port: target.port, features: udp ? FEATURE_UDP_FRAMED : FEATURE_EARLY_DATA }));
      if (!udp && early !== undefined && this.#earlyOn.get(id) === conn.id) {
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
    const accepted = reply.acceptedFeatures ?? 0;
    if (!udp) {
      if ((accepted & FEATURE_EARLY_DATA) !== 0) this.#earlyOn.set(id, conn.id);
      else this.#earlyOn.delete(id);
    }
    const udpFramed = udp && (accepted & FEATURE_UDP_FRAMED) !== 0;
    return { stream, udpFramed, relayed: isRelayed(this.o.libp2p, peer) };
  }

  /** Registered with libp2p.handle(PROXY_PROTOCOL). Never throws. */
  onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const remotePeer = connection.remotePeer.toString();
    if (!this.#track(stream, remotePeer)) {
      this.o.log.warn("proxy stream refused: stream limit reached", { peer: remotePeer });
      await replyAndClose(stream, FAILED);
      return;
    }
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
    const udpFramed = protocol === "udp" && ((msg.features ?? 0) & FEATURE_UDP_FRAMED) !== 0;
    // Payload behind a TCP CONNECT waits in the stream (readHeader puts it back) until the
    // handler's splice reads it, after its local dial: we can take early data.
    const earlyData = protocol === "tcp" && ((msg.features ?? 0) & FEATURE_EARLY_DATA) !== 0;
    const header: ProxyHeader = { protocol, ip: msg.ip, port, nodeName: msg.nodeName ?? "", remotePeer, remoteNode: this.o.book.nodeOf(remotePeer), udpFramed };
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
      const acceptedFeatures = (udpFramed ? FEATURE_UDP_FRAMED : 0) | (earlyData ? FEATURE_EARLY_DATA : 0);
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

function isRelayed(libp2p: Libp2p, peer: PeerId): boolean {
  const conns = libp2p.getConnections(peer);
  return conns.length > 0 && conns.every((c) => c.remoteAddr.toString().includes("/p2p-circuit"));
}
