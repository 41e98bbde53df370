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

/**
 * One service port's use against its own limit, for /peers/services: TCP connections or UDP
 * flows open now, the per-port cap (maxConnectionsPerPort for TCP; 0 = none, as UDP has: its
 * flows are bounded only per agent, least recently used evicted), and how many connections
 * the cap refused so far.
 */
export interface ServiceUse {
  /** namespace/name:port/PROTOCOL, as the data-path log lines name it. */
  service: string;
  namespace: string;
  name: string;
  port: number;
  protocol: string;
  active: number;
  max: number;
  limitHits: number;
  near: boolean;
}

/**
 * The per service port section, read from the proxy's own series (proxy_service_active and its
 * limit gauge, proxy_service_failures_total{reason="limit"}), so /metrics and this view can never
 * disagree and admin needs nothing of the hot path. Ports past the series budget have no series
 * of their own and are not listed (they share the overflow series on /metrics).
 */
export function servicesJson(snapshot: Readonly<Record<string, number>>): ServiceUse[] {
  const maxOf = (protocol: string) => snapshot[`proxy_service_active_max{protocol="${protocol}"}`] ?? 0;
  const out: ServiceUse[] = [];
  for (const [key, active] of Object.entries(snapshot)) {
    if (!key.startsWith("proxy_service_active{")) continue;
    const l = parseLabels(key.slice("proxy_service_active".length));
    if (l.namespace === undefined || l.service === undefined || l.protocol === undefined) continue;
    const protocol = l.protocol;
    const max = maxOf(protocol);
    const hitsKey = `proxy_service_failures_total{namespace="${esc(l.namespace)}",port="${esc(l.port ?? "")}",protocol="${esc(protocol)}",reason="limit",service="${esc(l.service)}"}`;
    out.push({
      service: `${l.namespace}/${l.service}:${l.port}/${protocol}`,
      namespace: l.namespace,
      name: l.service,
      port: Number(l.port),
      protocol,
      active,
      max,
      limitHits: snapshot[hitsKey] ?? 0,
      near: max > 0 && active >= max * NEAR_LIMIT_RATIO,
    });
  }
  return out.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
}

/** `{a="x",b="y"}` (as the registry renders label sets) back to its values. */
function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
  }
  return out;
}

function esc(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}
