// The RouteTable: the one thing the control plane hands to every consumer (hot path, DNS,
// iptables, admin). A published table is deeply frozen and never changes; a new version is a
// new object. Consumers read the current reference once per connection / datagram flow / query.

export type Protocol = "TCP" | "UDP";

/** Load-balancing policy of one service port, from a DestinationRule named like the Service. */
export type LbPolicy =
  | { readonly kind: "ROUND_ROBIN" }
  | { readonly kind: "RANDOM" }
  /** consistentHash.useSourceIp: bounded-load consistent hashing on the client IP. */
  | { readonly kind: "CONSISTENT_HASH_SOURCE_IP" }
  /** consistentHash.httpHeaderName: hash of one request header (name lower-cased). */
  | { readonly kind: "CONSISTENT_HASH_HEADER"; readonly header: string };

export interface Endpoint {
  readonly ip: string;
  /** The target port on the endpoint (named target ports already resolved). */
  readonly port: number;
  /** The node the endpoint runs on; "" when the source did not say. */
  readonly node: string;
  /** False only for terminating endpoints used because no ready one exists. */
  readonly ready: boolean;
  readonly hostname: string;
  readonly zone: string;
}

export interface SessionAffinity {
  /** Service spec.sessionAffinity == ClientIP. */
  readonly clientIP: boolean;
  /** sessionAffinityConfig.clientIP.timeoutSeconds (Kubernetes default 10800). */
  readonly timeoutSeconds: number;
}

/** One service port that gets a listener (ClusterIP/NodePort/LoadBalancer services only). */
export interface ServicePort {
  /** Unique, stable id: "namespace/name:port/PROTO", e.g. "default/web:80/TCP". */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** The port's name in the Service ("" when unnamed). */
  readonly portName: string;
  readonly port: number;
  readonly protocol: Protocol;
  /** spec.clusterIPs (first is spec.clusterIP); empty in dev-mode manifests without one. */
  readonly clusterIPs: readonly string[];
  /** 0 when the port has no nodePort. */
  readonly nodePort: number;
  readonly externalIPs: readonly string[];
  readonly policy: LbPolicy;
  readonly affinity: SessionAffinity;
  /** Sorted by (ip, port) so that every consumer sees the same order. May be empty. */
  readonly endpoints: readonly Endpoint[];
}

export type ServiceType = "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" | "Headless";

/** What DNS needs to know about a Service, listener or not. */
export interface ServiceRecord {
  readonly namespace: string;
  readonly name: string;
  readonly type: ServiceType;
  readonly clusterIPs: readonly string[];
  /** spec.externalName for ExternalName services, else "". */
  readonly externalName: string;
  readonly ports: readonly { readonly name: string; readonly port: number; readonly protocol: Protocol }[];
  /** Headless services: the endpoints DNS answers with (ready ones, else terminating). */
  readonly endpoints: readonly Endpoint[];
}

export interface RouteTable {
  /** Strictly increasing per process; 0 is the empty table before the first sync. */
  readonly version: number;
  /** ms since epoch at compile time (from the injected clock). */
  readonly compiledAt: number;
  /** Sorted by key. */
  readonly ports: readonly ServicePort[];
  /** Same objects as `ports`, by key. A frozen plain object: reads never allocate. */
  readonly byKey: Readonly<Record<string, ServicePort>>;
  /** Sorted by namespace/name. */
  readonly services: readonly ServiceRecord[];
  /** Edge CNI: which remote pod CIDRs go through the tunnel; absent when edgeCNI is off. */
  readonly cni?: CniTable;
}

/**
 * Edge CNI plan: per remote node, the pod CIDRs that are not reachable at layer 3 from here
 * (another meshCIDRConfig segment, or another LAN). src/host routes exactly `routes` into the
 * TUN device; the packet pump finds a packet's peer with `lookup` (cniPeerIndex()).
 */
export interface CniTable {
  /** This node's pod CIDRs (spec.podCIDRs of its Node), IPv4 and IPv6 as written. */
  readonly localPodCIDRs: readonly string[];
  /** The meshCIDRConfig entry holding this node's IPv4 pod CIDR, "" when none does. */
  readonly localSegment: string;
  /** Remote nodes with at least one tunneled pod CIDR, sorted by name. */
  readonly peers: readonly CniPeer[];
  /** Remote nodes whose pod CIDRs stay on the normal path, sorted by name (for logs, /routes). */
  readonly direct: readonly CniDirect[];
  /** Every tunneled CIDR (normalized "a.b.c.d/len") and its node, sorted by CIDR text. */
  readonly routes: readonly CniRoute[];
  /** IPv4 longest-prefix match onto `peers`, most specific prefix length first. */
  readonly lookup: readonly CniPrefix[];
}

/** Why a remote node's pod CIDR is (not) tunneled: its meshCIDRConfig segment, or its LAN. */
export type CniReason = "segment" | "lan";

export interface CniPeer {
  readonly node: string;
  readonly podCIDRs: readonly string[];
  readonly reason: CniReason;
}

export interface CniDirect {
  readonly node: string;
  readonly podCIDRs: readonly string[];
  readonly reason: CniReason;
}

export interface CniRoute {
  readonly cidr: string;
  readonly node: string;
}

/** All tunneled prefixes of one length: network >>> (32 - bits) -> index into `peers`. */
export interface CniPrefix {
  readonly bits: number;
  readonly index: ReadonlyMap<number, number>;
}

/** The peer index (into cni.peers) for an IPv4 destination, or -1. No allocation. */
export function cniPeerIndex(lookup: readonly CniPrefix[], ip: number): number {
  for (let i = 0; i < lookup.length; i++) {
    const p = lookup[i]!;
    const hit = p.index.get(p.bits === 0 ? 0 : ip >>> (32 - p.bits));
    if (hit !== undefined) return hit;
  }
  return -1;
}

/** Deep-freeze a plain object graph (arrays and records). Returns the same object. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value as object)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

export function portKey(namespace: string, name: string, port: number, protocol: Protocol): string {
  return `${namespace}/${name}:${port}/${protocol}`;
}

export const EMPTY_TABLE: RouteTable = deepFreeze({
  version: 0,
  compiledAt: 0,
  ports: [],
  byKey: Object.create(null) as Record<string, ServicePort>,
  services: [],
});

/** Read side of the publisher: what every consumer of the table depends on. */
export interface TableSource {
  /** The current table; a plain field read, safe on the hot path. */
  current(): RouteTable;
  /** Called after each publish with the new table (never with the same version twice). */
  subscribe(listener: (table: RouteTable) => void): () => void;
}
