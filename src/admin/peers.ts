// The /peers document: each tunnel peer with its paths and, so an operator sees a limit coming
// before users hit it, every per-peer limit with its current use: TCP and UDP proxy streams (a
// budget each), the UDP flows this agent has open to the peer, and the far sockets it holds for
// the peer's flows. `near` lists the limits at NEAR_LIMIT_RATIO or more. Built from plain values:
// admin imports neither the tunnel nor the hot path.

/** A limit is reported as near at this share of its maximum. */
export const NEAR_LIMIT_RATIO = 0.8;

export interface Use {
  open: number;
  max: number;
}

/** What the tunnel's PeerInfo and this view share about a peer. */
interface PeerBase {
  peerId: string;
  nodeName?: string;
  connected: boolean;
  addrs: string[];
  relayed: boolean;
  streams: number;
}

/** The per-peer part of the tunnel's PeerInfo this view needs. */
export interface PeerLike extends PeerBase {
  limits: { tcp: Use & { agentOpen: number; agentMax: number }; udp: Use & { agentOpen: number; agentMax: number } };
}

export interface FlowCounts {
  /** UDP flows from this agent to the node (none known: undefined). */
  out?(node: string): Use;
  /** Far sockets held for the peer's UDP flows, by peer ID. */
  in?(peerId: string): Use;
}

export interface PeerView extends PeerBase {
  limits: {
    tcpStreams: Use;
    udpStreams: Use;
    udpFlowsOut?: Use;
    udpFlowsIn?: Use;
  };
  near: string[];
}

export function peersJson(peers: readonly PeerLike[], flows: FlowCounts = {}): PeerView[] {
  return peers.map((p) => {
    const limits: PeerView["limits"] = {
      tcpStreams: { open: p.limits.tcp.open, max: p.limits.tcp.max },
      udpStreams: { open: p.limits.udp.open, max: p.limits.udp.max },
    };
    if (flows.out && p.nodeName !== undefined) limits.udpFlowsOut = flows.out(p.nodeName);
    if (flows.in) limits.udpFlowsIn = flows.in(p.peerId);
    const near = Object.entries(limits)
      .filter(([, u]) => u !== undefined && u.max > 0 && u.open >= u.max * NEAR_LIMIT_RATIO)
      .map(([k]) => k);
    return { peerId: p.peerId, nodeName: p.nodeName, connected: p.connected, addrs: p.addrs, relayed: p.relayed, streams: p.streams, limits, near };
  });
}
