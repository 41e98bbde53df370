// /libp2p/tunnel-cni/1.0.0, both ends. EdgeMesh's beta (pkg/tunnel: GetCNIAdapterStream,
// CNIAdapterStreamHandler) opens the stream, sends a delimited Proxy CONNECT (its protocol,
// the target node's name, ip "" and port 0), waits for SUCCESS/FAILED, and then writes IP
// packets back to back with no framing of their own: the receiver splits them by the IP header's
// length. The receiver only reads. We speak exactly that; between our agents the CONNECT may
// also offer FEATURE_CNI_VNET (our header extension, field 100, skipped by EdgeMesh) and our
// SUCCESS accepts it (field 101), which puts a virtio_net_hdr in front of every packet.
//
// Like proxy.ts this is transport only: after the answer the stream and its bytes belong to the
// hot path (src/hotpath/cni). EdgeMesh opens one stream per packet and never closes it, so an
// inbound peer keeps at most MAX_INBOUND_PER_PEER streams here: the oldest is reset first.
// A stream opened while the peer was reachable only through a relay stays on that connection
// even after hole punching connected the agents directly; when a direct connection to the peer
// opens, such a stream is closed gracefully (its queued bytes still arrive) and the hot path's
// next packet opens one on the direct connection, which open() prefers.
import type { Connection, PeerId, Stream } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Libp2p } from "libp2p";
import type { Logger } from "../log/index.ts";
import type { Counter, MetricsRegistry } from "../metrics/index.ts";
import { decodeProxyBody, encodeProxy, MsgType } from "./codec.ts";
import { CNI_PROTOCOL, HEADER_TIMEOUT_MS, OPEN_TIMEOUT_MS } from "./constants.ts";
import { TunnelError } from "./errors.ts";
import { newStreamLazy, readHeader, readSelected, replyAndClose } from "./header-io.ts";
import type { PeerBook } from "./peers.ts";
import type { CniHandler, OpenedCniStream } from "./types.ts";

const FAILED = encodeProxy({ type: MsgType.FAILED });
/** EdgeMesh's beta leaves one stream open per packet it sent; older ones are reset. */
export const MAX_INBOUND_CNI_STREAMS_PER_PEER = 8;
/** What our CONNECT names as its protocol (EdgeMesh's handler does not read it). */
const CNI_CONNECT_PROTOCOL = "ip";

export interface CniServiceOptions {
  libp2p: Libp2p;
  book: PeerBook;
  log: Logger;
  metrics: MetricsRegistry;
}

export class CniService {
  handler: CniHandler | undefined;
  readonly #inbound = new Map<string, Stream[]>();
  /** Our streams that run over a relayed connection, by peer: moved once a direct one opens. */
  readonly #relayedOut = new Map<string, Set<Stream>>();
  readonly #c: Record<"opened" | "openFailed" | "accepted" | "refused" | "badHeader" | "evicted", Counter>;
  #open = 0;

  constructor(private readonly o: CniServiceOptions) {
    const m = o.metrics;
    this.#c = {
      opened: m.counter("tunnel_cni_streams_opened_total", "Edge CNI streams opened to other agents"),
      openFailed: m.counter("tunnel_cni_open_failures_total", "Edge CNI streams that could not be opened or were refused"),
      accepted: m.counter("tunnel_cni_streams_accepted_total", "Edge CNI streams accepted from other agents"),
      refused: m.counter("tunnel_cni_refused_total", "Incoming Edge CNI streams answered FAILED (CNI off here)"),
      badHeader: m.counter("tunnel_cni_bad_header_total", "Incoming Edge CNI streams with a malformed or missing header"),
      evicted: m.counter("tunnel_cni_streams_evicted_total", "Inbound Edge CNI streams reset to keep a peer under the per-peer cap"),
    };
    m.gaugeFn("tunnel_cni_streams_open", "Edge CNI streams open now, both directions", () => this.#open);
    this.#moved = m.counter("tunnel_cni_streams_moved_total", "Relayed Edge CNI streams closed because a direct connection to the peer opened");
    o.libp2p.addEventListener("connection:open", (evt) => {
      const conn = evt.detail;
      if (isCircuit(conn)) return;
      const streams = this.#relayedOut.get(conn.remotePeer.toString());
      if (!streams) return;
      this.#relayedOut.delete(conn.remotePeer.toString());
      for (const s of streams) {
        this.#moved.value++;
        s.close().catch(() => s.abort(new Error("moving to a direct connection")));
      }
    });
  }
  readonly #moved: Counter;

  #count(stream: Stream): void {
    this.#open++;
    stream.addEventListener("close", () => this.#open--);
  }

  /** Opens a CNI stream to `node`'s agent; resolves after its SUCCESS. */
  async open(node: string, features: number, signal?: AbortSignal): Promise<OpenedCniStream> {
    const id = await this.o.book.peerOf(node);
    if (!id) throw new TunnelError("NO_PEER", `no peer ID known for node ${node} (secure mode needs its published ID)`);
    const peer = peerIdFromString(id);
    await this.#ensureAddrs(peer);
    const timeout = AbortSignal.timeout(OPEN_TIMEOUT_MS);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let stream: Stream;
    let lazy: boolean;
    let relayedConn = false;
    try {
      const opts = { runOnLimitedConnection: true, signal: sig };
      // A direct connection when there is one (dial() may hand back the relayed one).
      const conn = this.o.libp2p.getConnections(peer).find((c) => c.status === "open" && !isCircuit(c)) ?? (await this.o.libp2p.dial(peer, opts));
      ({ stream, lazy } = await newStreamLazy(conn, CNI_PROTOCOL, opts));
      relayedConn = isCircuit(conn);
    } catch (err) {
      this.#c.openFailed.value++;
      throw new TunnelError("NO_PEER", `cannot open a CNI stream to node ${node} (${id}): ${(err as Error).message}`);
    }
    this.#count(stream);
    let reply;
    try {
      stream.send(encodeProxy({ type: MsgType.CONNECT, protocol: CNI_CONNECT_PROTOCOL, nodeName: node, ip: "", port: 0, features: features === 0 ? undefined : features }));
      if (lazy) await readSelected(stream, CNI_PROTOCOL, OPEN_TIMEOUT_MS);
      reply = await readHeader(stream, decodeProxyBody, OPEN_TIMEOUT_MS);
    } catch (err) {
      this.#c.openFailed.value++;
      stream.abort(err as Error);
      throw err instanceof TunnelError ? err : new TunnelError("CLOSED", `CNI handshake with node ${node} failed: ${(err as Error).message}`);
    }
    if (reply.type !== MsgType.SUCCESS) {
      this.#c.openFailed.value++;
      stream.abort(new TunnelError("PROXY_REFUSED", "FAILED"));
      throw new TunnelError("PROXY_REFUSED", `node ${node} refused the CNI stream (Edge CNI off there?)`);
    }
    this.#c.opened.value++;
    if (relayedConn) this.#trackRelayed(id, stream);
    return { stream, acceptedFeatures: (reply.acceptedFeatures ?? 0) & features, relayed: relayedConn };
  }

  /** Registered with libp2p.handle(CNI_PROTOCOL). Never throws. */
  onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const remotePeer = connection.remotePeer.toString();
    this.#count(stream);
    let msg;
    try {
      msg = await readHeader(stream, decodeProxyBody, HEADER_TIMEOUT_MS);
    } catch (err) {
      this.#c.badHeader.value++;
      this.o.log.warn("CNI stream refused: bad header", { peer: remotePeer, error: err as Error });
      await replyAndClose(stream, FAILED);
      return;
    }
    if (msg.type !== MsgType.CONNECT) {
      this.#c.badHeader.value++;
      await replyAndClose(stream, FAILED);
      return;
    }
    let accepted: number | false = false;
    try {
      accepted = this.handler ? this.handler({ remotePeer, remoteNode: this.o.book.nodeOf(remotePeer), nodeName: msg.nodeName ?? "", features: msg.features ?? 0 }, stream) : false;
    } catch (err) {
      this.o.log.error("CNI handler threw", { peer: remotePeer, error: err as Error });
    }
    if (accepted === false) {
      this.#c.refused.value++;
      await replyAndClose(stream, FAILED);
      return;
    }
    try {
      stream.send(encodeProxy({ type: MsgType.SUCCESS, acceptedFeatures: accepted === 0 ? undefined : accepted }));
      this.#c.accepted.value++;
    } catch (err) {
      stream.abort(err as Error);
      return;
    }
    this.#keep(remotePeer, stream);
  };

  #trackRelayed(peer: string, stream: Stream): void {
    let set = this.#relayedOut.get(peer);
    if (!set) this.#relayedOut.set(peer, (set = new Set()));
    set.add(stream);
    stream.addEventListener("close", () => {
      const s = this.#relayedOut.get(peer);
      s?.delete(stream);
      if (s?.size === 0) this.#relayedOut.delete(peer);
    });
  }

  #keep(peer: string, stream: Stream): void {
    let list = this.#inbound.get(peer);
    if (!list) this.#inbound.set(peer, (list = []));
    list.push(stream);
    stream.addEventListener("close", () => {
      const l = this.#inbound.get(peer);
      if (!l) return;
      const i = l.indexOf(stream);
      if (i >= 0) l.splice(i, 1);
      if (l.length === 0) this.#inbound.delete(peer);
    });
    while (list.length > MAX_INBOUND_CNI_STREAMS_PER_PEER) {
      this.#c.evicted.value++;
      list.shift()!.abort(new TunnelError("STREAM_LIMIT", "newer CNI streams from this peer replace it"));
    }
  }

  /** Like EdgeMesh: an unknown peer is reachable through every relay. */
  async #ensureAddrs(peer: PeerId): Promise<void> {
    if (this.o.libp2p.getConnections(peer).length > 0) return;
    const circuits = this.o.book.circuitAddrs(peer.toString());
    if (circuits.length === 0) return;
    await this.o.libp2p.peerStore.merge(peer, { multiaddrs: circuits });
  }
}

function isCircuit(c: Connection): boolean {
  return c.remoteAddr.toString().includes("/p2p-circuit");
}
