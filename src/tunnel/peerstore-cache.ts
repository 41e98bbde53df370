// Skips libp2p's repeated "this peer speaks protocol P" peer-store writes.
//
// libp2p 3 awaits peerStore.merge(peer, { protocols: [P] }) on every stream it opens or
// accepts (connection.js newStream / onIncomingStream). Each merge takes the store's write lock,
// reads and decodes the peer record, re-encodes and compares it: measured about a tenth of the
// CPU of a burst of proxy-stream opens, and the write lock serialises the burst. After the
// first merge for a (peer, protocol) pair nothing changes, so later identical merges resolve
// with the record of the last real one. Any other merge (addresses, metadata, several keys) goes
// through, and a peer's entry is forgotten when it disconnects, so a deleted or pruned record
// is written again on the next connection's first stream.
import type { Libp2p, PeerId } from "@libp2p/interface";

type Merge = Libp2p["peerStore"]["merge"];
type PeerRecord = Awaited<ReturnType<Merge>>;

interface Known {
  protocols: Set<string>;
  record: PeerRecord;
}

/** Installs the shortcut on this node's peer store; returns a counter of skipped merges. */
export function skipRepeatedProtocolMerges(node: Pick<Libp2p, "peerStore" | "addEventListener">): { skipped: number } {
  const stats = { skipped: 0 };
  const store = node.peerStore;
  const merge: Merge = store.merge.bind(store);
  const known = new Map<string, Known>();
  store.merge = (peer: PeerId, data, options) => {
    const key = peer.toString();
    const protocols = onlyProtocols(data);
    if (protocols === undefined) {
      known.delete(key); // the record changes: take the next protocol merge's result fresh
      return merge(peer, data, options);
    }
    const k = known.get(key);
    if (k !== undefined && protocols.every((p) => k.protocols.has(p))) {
      stats.skipped++;
      return Promise.resolve(k.record);
    }
    return merge(peer, data, options).then((record) => {
      const entry = known.get(key) ?? { protocols: new Set<string>(), record };
      entry.record = record;
      for (const p of protocols) entry.protocols.add(p);
      known.set(key, entry);
      return record;
    });
  };
  node.addEventListener("peer:disconnect", (evt) => known.delete(evt.detail.toString()));
  return stats;
}

/** The protocols when `data` holds nothing but a protocols list, else undefined. */
function onlyProtocols(data: Parameters<Merge>[1]): string[] | undefined {
  const keys = Object.keys(data);
  if (keys.length !== 1 || keys[0] !== "protocols" || !Array.isArray(data.protocols)) return undefined;
  return data.protocols;
}
