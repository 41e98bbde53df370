// /libp2p/tunnel-discovery/1.0.0: EdgeMesh's node-name <-> peer-ID handshake. The opener sends
// CONNECT {protocol: "MDNS"|"DHT", node_name: own name}; the receiver answers SUCCESS with its own
// name; both record the pair. Run after mDNS finds a peer and whenever a connection to a peer of
// unknown name is identified (relays, direct dials).
import type { Connection, PeerId, Stream } from "@libp2p/interface";
import type { Libp2p } from "libp2p";
import type { Logger } from "../log/index.ts";
import type { Counter, MetricsRegistry } from "../metrics/index.ts";
import { decodeDiscoveryBody, encodeDiscovery, MsgType } from "./codec.ts";
import { DISCOVERY_PROTOCOL, HEADER_TIMEOUT_MS } from "./constants.ts";
import { readHeader, replyAndClose } from "./header-io.ts";
import type { PeerBook } from "./peers.ts";

/**
 * Kubernetes node names are DNS-1123 subdomains (at most 253 characters): a peer claiming any
 * other name is refused, so it cannot plant an entry no Service endpoint could ever point at.
 */
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export function isNodeName(name: string | undefined): name is string {
  return name !== undefined && name.length <= 253 && NODE_NAME.test(name);
}

export class DiscoveryService {
  readonly #inflight = new Set<string>();
  readonly #ok: Counter;
  readonly #failed: Counter;

  constructor(
    private readonly o: { libp2p: Libp2p; book: PeerBook; nodeName: string; log: Logger; metrics: MetricsRegistry },
  ) {
    this.#ok = o.metrics.counter("tunnel_discovery_handshakes_total", "Node-name handshakes completed");
    this.#failed = o.metrics.counter("tunnel_discovery_failures_total", "Node-name handshakes that failed");
  }

  /** Opener side; never throws. `via` is "MDNS" (LAN) or "DHT" (found beyond it), as EdgeMesh. */
  async handshake(peer: PeerId, via: "MDNS" | "DHT"): Promise<void> {
    const id = peer.toString();
    if (this.#inflight.has(id) || peer.equals(this.o.libp2p.peerId)) return;
    this.#inflight.add(id);
    let stream: Stream | undefined;
    try {
      stream = await this.o.libp2p.dialProtocol(peer, DISCOVERY_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(HEADER_TIMEOUT_MS) });
      stream.send(encodeDiscovery({ type: MsgType.CONNECT, protocol: via, nodeName: this.o.nodeName }));
      const reply = await readHeader(stream, decodeDiscoveryBody, HEADER_TIMEOUT_MS);
      if (reply.type !== MsgType.SUCCESS || !isNodeName(reply.nodeName)) throw new Error(`answer type ${reply.type} without a valid node name`);
      this.o.book.set(reply.nodeName, id);
      this.#ok.value++;
      this.o.log.info("discovered node", { node: reply.nodeName, peer: id, via });
      await stream.close().catch(() => {});
    } catch (err) {
      this.#failed.value++;
      this.o.log.debug("discovery handshake failed", { peer: id, via, error: err as Error });
      stream?.abort(err as Error);
    } finally {
      this.#inflight.delete(id);
    }
  }

  /** Receiver side, registered with libp2p.handle(DISCOVERY_PROTOCOL). Never throws. */
  onStream = async (stream: Stream, connection: Connection): Promise<void> => {
    const id = connection.remotePeer.toString();
    try {
      const msg = await readHeader(stream, decodeDiscoveryBody, HEADER_TIMEOUT_MS);
      if (msg.type !== MsgType.CONNECT || !isNodeName(msg.nodeName)) throw new Error("expected CONNECT with a node name (a DNS-1123 subdomain)");
      await replyAndClose(stream, encodeDiscovery({ type: MsgType.SUCCESS, protocol: msg.protocol, nodeName: this.o.nodeName }));
      this.o.book.set(msg.nodeName, id);
      this.#ok.value++;
      this.o.log.info("discovered node", { node: msg.nodeName, peer: id, via: msg.protocol, inbound: true });
    } catch (err) {
      this.#failed.value++;
      this.o.log.warn("discovery stream refused", { peer: id, error: err as Error });
      await replyAndClose(stream, encodeDiscovery({ type: MsgType.FAILED }));
    }
  };
}
