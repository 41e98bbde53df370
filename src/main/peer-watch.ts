// Secure mode, reading side: the peer IDs other agents published on their Node objects (the
// annotation below, from the API or from manifest-folder publications) become the tunnel's
// allowed set and its node -> peer ID map. An edge gateway publishes its own ID on the Node it
// runs on under a second key; it is admitted under its tunnel name "<node>-gateway". A Node whose annotation disappears loses its
// permission (setAllowedPeers closes its connections) and its mapping. A malformed value is
// ignored, counted, and logged once per node and value: it must never stop the agent.

import type { KubeObject, ObjectStore } from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { isPeerIdString, type Tunnel } from "../tunnel/index.ts";
import { GATEWAY_IDENTITY_SUFFIX, GATEWAY_PEER_ID_ANNOTATION } from "./gateway-config.ts";

/** Where an agent in secure mode publishes its tunnel peer ID (on its own Node). */
export const PEER_ID_ANNOTATION = "edgemesh.kubeedge.io/peer-id";
export { GATEWAY_PEER_ID_ANNOTATION };

/** The annotations read, and the tunnel name each publishes for the Node it is on. */
const PUBLISHED_KEYS: readonly { annotation: string; suffix: string }[] = [
  { annotation: PEER_ID_ANNOTATION, suffix: "" },
  { annotation: GATEWAY_PEER_ID_ANNOTATION, suffix: GATEWAY_IDENTITY_SUFFIX },
];

/** Malformed (node, value) pairs remembered so each is logged once. */
const MAX_REPORTED = 10_000;

export interface PublishedPeers {
  /** tunnel name (node, or "<node>-gateway") -> peer ID, for every well-formed annotation. */
  peers: Map<string, string>;
  /** Nodes whose annotation is present but not a peer ID. */
  malformed: { node: string; value: string }[];
}

/** Pure: the published peer IDs among `nodes` (the store's Node map). */
export function readPublishedPeers(nodes: Iterable<KubeObject>): PublishedPeers {
  const peers = new Map<string, string>();
  const malformed: PublishedPeers["malformed"] = [];
  for (const node of nodes) {
    const name = node.metadata?.name;
    if (typeof name !== "string") continue;
    for (const k of PUBLISHED_KEYS) {
      const raw = node.metadata?.annotations?.[k.annotation];
      if (raw === undefined) continue;
      const value = typeof raw === "string" ? raw.trim() : raw;
      if (isPeerIdString(value)) peers.set(name + k.suffix, value);
      else malformed.push({ node: name + k.suffix, value: String(raw).slice(0, 80) });
    }
  }
  return { peers, malformed };
}

export interface PeerWatcherOptions {
  store: ObjectStore;
  tunnel: Pick<Tunnel, "setAllowedPeers" | "addPeer" | "forgetPeer">;
  /** This agent's tunnel name (the gateway's: "<node>-gateway"): its own publication is neither a peer nor an address to learn. */
  nodeName: string;
  log: Logger;
  metrics: MetricsRegistry;
}

export interface PeerWatcher {
  /** node -> peer ID currently applied (for tests and /peers). */
  current(): ReadonlyMap<string, string>;
  stop(): void;
}

/** Applies the store's publications now and on every change of the Node objects. */
export function createPeerWatcher(o: PeerWatcherOptions): PeerWatcher {
  const malformedTotal = o.metrics.counter("tunnel_peer_annotation_malformed_total", `Node annotations ${PEER_ID_ANNOTATION} that are not a peer ID (ignored)`);
  const published = o.metrics.gauge("tunnel_published_peers", "Nodes with a published tunnel peer ID (secure mode)");
  const reported = new Set<string>();
  let applied = new Map<string, string>();
  let lastNodes: unknown;
  let allowedKey = "";

  const sync = (): void => {
    const nodes = o.store.snapshot().Node;
    // The store copies a kind's map on every write to it: same map, no Node changed.
    if (nodes === lastNodes) return;
    lastNodes = nodes;
    const { peers, malformed } = readPublishedPeers(nodes.values());
    for (const m of malformed) {
      const key = `${m.node}\u0000${m.value}`;
      if (reported.has(key)) continue;
      if (reported.size >= MAX_REPORTED) reported.clear(); // bounded; at worst a line repeats
      reported.add(key);
      malformedTotal.value++;
      o.log.warn(`ignoring a malformed ${PEER_ID_ANNOTATION} or ${GATEWAY_PEER_ID_ANNOTATION} annotation (not a libp2p peer ID)`, { node: m.node, value: m.value });
    }
    peers.delete(o.nodeName);
    published.value = peers.size;

    // Allowed set first, so a changed ID is admitted before traffic is pointed at it.
    const ids = [...new Set(peers.values())].sort();
    const key = ids.join(",");
    if (key !== allowedKey) {
      allowedKey = key;
      o.tunnel.setAllowedPeers(ids);
    }
    for (const [node, id] of peers) {
      if (applied.get(node) === id) continue;
      o.log.info("peer ID published", { node, peer: id, changed: applied.has(node) });
      o.tunnel.addPeer(node, id).catch((err) => o.log.warn("cannot record a published peer", { node, peer: id, error: err as Error }));
    }
    for (const node of applied.keys()) {
      if (peers.has(node)) continue;
      o.log.info("peer ID withdrawn: the node's publication is gone", { node, peer: applied.get(node) });
      o.tunnel.forgetPeer(node);
    }
    applied = peers;
  };

  const guarded = (): void => {
    try {
      sync();
    } catch (err) {
      // A listener of the store must not throw into the source that wrote it.
      o.log.error("applying published peer IDs failed", { error: err as Error });
    }
  };
  guarded();
  const unsubscribe = o.store.onChange(guarded);
  return {
    current: () => applied,
    stop: unsubscribe,
  };
}
