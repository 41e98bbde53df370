// The peer book: node name <-> peer ID (learned by discovery, given by addPeer, or derived from
// the name in compat mode, as EdgeMesh does) and the relays with their addresses.
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
  relays: Relay[] = [];

  constructor(
    private readonly compat: boolean,
    private readonly listenPort: number,
    private readonly transport: TransportKind,
  ) {}

  set(nodeName: string, peerId: string): void {
    const old = this.#byNode.get(nodeName);
    if (old && old !== peerId) this.#byPeer.delete(old);
    this.#byNode.set(nodeName, peerId);
    this.#byPeer.set(peerId, nodeName);
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
