// The peer book: node name <-> peer ID (learned by discovery, given by addPeer, or derived from
// the name in compat mode, as EdgeMesh does) and the relays with their addresses.
// Pinned entries (secure mode: IDs published in Node metadata) outrank discovery: the discovery
// handshake is a peer's own claim, so an admitted peer saying "I am node X" must not redirect
// X's traffic to itself.
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";
import { isIP } from "node:net";
import { TunnelError } from "./errors.ts";
import type { TransportKind } from "./host.ts";
import { peerIdFromNodeName } from "./identity.ts";
import type { RelayNode } from "./types.ts";

export interface Relay {
  nodeName: string;
  peerId?: string;
  addrs: Multiaddr[];
}

export class PeerBook {
  readonly #byNode = new Map<string, string>();
  readonly #byPeer = new Map<string, string>();
  readonly #derived = new Map<string, string>();
  readonly #pinned = new Map<string, string>();
  relays: Relay[] = [];

  constructor(
    private readonly compat: boolean,
    private readonly listenPort: number,
    private readonly transport: TransportKind,
  ) {}

  /** Record a learned pair; false (and nothing changes) when it contradicts a pinned one. */
  set(nodeName: string, peerId: string): boolean {
    const pin = this.#pinned.get(nodeName);
    if (pin !== undefined && pin !== peerId) return false;
    const pinnedNode = this.#byPeer.get(peerId);
    if (pinnedNode !== undefined && pinnedNode !== nodeName && this.#pinned.get(pinnedNode) === peerId) return false;
    const old = this.#byNode.get(nodeName);
    if (old && old !== peerId) this.#byPeer.delete(old);
    this.#byNode.set(nodeName, peerId);
    this.#byPeer.set(peerId, nodeName);
    return true;
  }

  /** An authoritative pair (published metadata): replaces whatever was learned for the node. */
  pin(nodeName: string, peerId: string): void {
    const old = this.#pinned.get(nodeName);
    if (old !== undefined && old !== peerId) this.#drop(nodeName);
    this.#pinned.set(nodeName, peerId);
    // A relay given by name and address only (secure mode) gets its ID from its publication.
    for (const r of this.relays) if (r.nodeName === nodeName) r.peerId = peerId;
    const prevNode = this.#byPeer.get(peerId);
    if (prevNode !== undefined && prevNode !== nodeName) this.#byNode.delete(prevNode);
    this.set(nodeName, peerId);
  }

  /** Forget a node's pinned and learned IDs (its publication disappeared). */
  unpin(nodeName: string): void {
    if (!this.#pinned.has(nodeName)) return;
    this.#drop(nodeName);
  }

  #drop(nodeName: string): void {
    this.#pinned.delete(nodeName);
    const id = this.#byNode.get(nodeName);
    this.#byNode.delete(nodeName);
    if (id !== undefined && this.#byPeer.get(id) === nodeName) this.#byPeer.delete(id);
  }

  nodeOf(peerId: string): string | undefined {
    return this.#byPeer.get(peerId);
  }

  /** The peer ID for `node`: learned, else (compat mode) derived from the name. */
  async peerOf(node: string): Promise<string | undefined> {
    const known = this.#byNode.get(node);
    if (known || !this.compat) return known;
    let derived = this.#derived.get(node);
    if (!derived) {
      derived = await peerIdFromNodeName(node);
      this.#derived.set(node, derived);
    }
    return derived;
  }

  async setRelays(nodes: RelayNode[]): Promise<void> {
    const relays: Relay[] = [];
    for (const n of nodes) {
      const peerId = n.peerId ?? (this.compat ? await peerIdFromNodeName(n.nodeName) : undefined);
      relays.push({ nodeName: n.nodeName, peerId, addrs: this.toMultiaddrs(n.advertiseAddress) });
      if (peerId) this.set(n.nodeName, peerId);
    }
    this.relays = relays;
  }

  /** `/…/p2p/RELAY/p2p-circuit/p2p/DEST` through every relay with a known ID but DEST itself. */
  circuitAddrs(dest: string): Multiaddr[] {
    const out: Multiaddr[] = [];
    for (const r of this.relays) {
      if (!r.peerId || r.peerId === dest) continue;
      for (const a of r.addrs) out.push(multiaddr(`${a.toString()}/p2p/${r.peerId}/p2p-circuit/p2p/${dest}`));
    }
    return out;
  }

  /** EdgeMesh's advertiseAddress holds bare IPs; full multiaddrs are accepted too. */
  toMultiaddrs(addresses: string[]): Multiaddr[] {
    const out: Multiaddr[] = [];
    for (const a of addresses) {
      if (a.startsWith("/")) {
        try {
          out.push(multiaddr(a));
        } catch (err) {
          throw new TunnelError("BAD_CONFIG", `relay advertiseAddress ${a} is not a multiaddr: ${(err as Error).message}`);
        }
        continue;
      }
      const family = isIP(a) === 6 ? "ip6" : isIP(a) === 4 ? "ip4" : "dns";
      if (this.transport !== "quic") out.push(multiaddr(`/${family}/${a}/tcp/${this.listenPort}`));
      if (this.transport !== "tcp") out.push(multiaddr(`/${family}/${a}/udp/${this.listenPort}/quic-v1`));
    }
    return out;
  }
}
