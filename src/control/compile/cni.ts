// Edge CNI compile: Node objects in, the CniTable out. For each remote node's pod CIDR it
// decides whether this node reaches it at layer 3 (the primary CNI's job) or through the tunnel:
//
//  1. meshCIDRConfig segments (EdgeMesh's cloudCIDR/edgeCIDR: address ranges whose pods reach
//     each other): when this node's or the remote CIDR lies in a segment, the remote CIDR is
//     direct exactly when both lie in the same segment (the most specific one covering each).
//  2. Neither in a segment: direct when the remote node's InternalIP is on one of this node's
//     own subnets (the same LAN, where a host-gw/flannel CNI routes pods), else tunneled.
//
// EdgeMesh's beta routes whole segments into its TUN and asks the API for a pod's node per
// packet; routing each node's own pod CIDR instead lets the pump find the peer with a prefix
// lookup and lets a node's routes live exactly as long as its Node object.
// IPv4 only: IPv6 pod CIDRs are reported and stay on the normal path.

import type { KubeObject } from "../objects.ts";
import type { CniDirect, CniPeer, CniPrefix, CniReason, CniRoute, CniTable } from "../table.ts";
import { containsIp, covers, overlaps, parseCidr4, parseIPv4, type Cidr4 } from "./cidr.ts";

export interface CniCompileOptions {
  /** This node (NODE_NAME). */
  nodeName: string;
  /** modules.edgeCNI.meshCIDRConfig. */
  cloudCIDR: readonly string[];
  edgeCIDR: readonly string[];
  /** This node's own interface subnets ("192.168.1.11/24"), for the same-LAN rule. */
  localSubnets: readonly string[];
}

interface NodeInfo {
  readonly name: string;
  /** As written in the Node (spec.podCIDRs, else spec.podCIDR). */
  readonly podCIDRs: readonly string[];
  readonly v4: readonly Cidr4[];
  readonly internalIPs: readonly number[];
}

export function compileCni(nodes: ReadonlyMap<string, KubeObject>, o: CniCompileOptions, warn: (msg: string) => void): CniTable {
  const segments = parseList([...o.cloudCIDR, ...o.edgeCIDR], "meshCIDRConfig", warn);
  const subnets = parseList(o.localSubnets, "local subnet", () => {});
  const infos = [...nodes.values()].map((n) => nodeInfo(n, warn)).filter((n): n is NodeInfo => n !== undefined);
  infos.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const self = infos.find((n) => n.name === o.nodeName);
  if (!self || self.v4.length === 0) {
    warn(`Edge CNI: Node ${o.nodeName} has no IPv4 spec.podCIDR: other sites cannot route to this node's pods`);
  }
  const local = self?.v4 ?? [];
  const localSegment = local.length > 0 ? segmentOf(local[0]!, segments) : undefined;

  const peers: CniPeer[] = [];
  const direct: CniDirect[] = [];
  const routes: CniRoute[] = [];
  const claimed = new Map<string, string>(); // cidr text -> node that got it first
  for (const n of infos) {
    if (n.name === o.nodeName) continue;
    const tunneled: string[] = [];
    const kept: string[] = [];
    let reason: CniReason = "lan";
    for (const cidr of n.v4) {
      const clash = local.find((l) => overlaps(l, cidr));
      if (clash) {
        warn(`Edge CNI: Node ${n.name} pod CIDR ${cidr.text} overlaps this node's ${clash.text}; not routed`);
        continue;
      }
      const first = claimed.get(cidr.text);
      if (first !== undefined) {
        warn(`Edge CNI: pod CIDR ${cidr.text} is claimed by Nodes ${first} and ${n.name}; routed to ${first}`);
        continue;
      }
      const seg = segmentOf(cidr, segments);
      let reachable: boolean;
      if (seg !== undefined || localSegment !== undefined) {
        reason = "segment";
        reachable = seg === localSegment;
      } else {
        reason = "lan";
        reachable = n.internalIPs.some((ip) => subnets.some((s) => containsIp(s, ip)));
      }
      if (reachable) kept.push(cidr.text);
      else {
        tunneled.push(cidr.text);
        claimed.set(cidr.text, n.name);
        routes.push({ cidr: cidr.text, node: n.name });
      }
    }
    if (tunneled.length > 0) peers.push({ node: n.name, podCIDRs: tunneled, reason });
    if (kept.length > 0) direct.push({ node: n.name, podCIDRs: kept, reason });
  }
  routes.sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0));

  const table: CniTable = {
    localPodCIDRs: self?.podCIDRs ?? [],
    localSegment: localSegment?.text ?? "",
    peers,
    direct,
    routes,
    lookup: buildLookup(peers),
  };
  return deepFreezeCni(table);
}

/** The most specific segment covering `cidr`, or undefined. */
function segmentOf(cidr: Cidr4, segments: readonly Cidr4[]): Cidr4 | undefined {
  let best: Cidr4 | undefined;
  for (const s of segments) if (covers(s, cidr) && (best === undefined || s.bits > best.bits)) best = s;
  return best;
}

function parseList(list: readonly string[], what: string, warn: (msg: string) => void): Cidr4[] {
  const out: Cidr4[] = [];
  for (const text of list) {
    const c = parseCidr4(text);
    if (c) out.push(c);
    else if (text.includes(":")) warn(`Edge CNI: ${what} ${text} is IPv6; only IPv4 pod ranges are tunneled`);
    else warn(`Edge CNI: ${what} ${text} is not an IPv4 CIDR; ignored`);
  }
  return out;
}

function nodeInfo(node: KubeObject, warn: (msg: string) => void): NodeInfo | undefined {
  const name = node.metadata?.name;
  if (typeof name !== "string" || name === "") return undefined;
  const spec = node.spec ?? {};
  const many = Array.isArray(spec.podCIDRs) ? spec.podCIDRs.filter((c: unknown): c is string => typeof c === "string") : [];
  const podCIDRs: string[] = many.length > 0 ? many : typeof spec.podCIDR === "string" && spec.podCIDR !== "" ? [spec.podCIDR] : [];
  const v4: Cidr4[] = [];
  for (const text of podCIDRs) {
    const c = parseCidr4(text);
    if (c) v4.push(c);
    else if (!text.includes(":")) warn(`Edge CNI: Node ${name} has a malformed pod CIDR ${JSON.stringify(text)}; ignored`);
    // IPv6 pod CIDRs of dual-stack nodes stay on the normal path (see the file comment).
  }
  const internalIPs: number[] = [];
  const addresses = Array.isArray(node.status?.addresses) ? node.status.addresses : [];
  for (const a of addresses) {
    if (a?.type !== "InternalIP" || typeof a.address !== "string") continue;
    const ip = parseIPv4(a.address);
    if (ip !== undefined) internalIPs.push(ip);
  }
  return { name, podCIDRs, v4, internalIPs };
}

function buildLookup(peers: readonly CniPeer[]): CniPrefix[] {
  const byBits = new Map<number, Map<number, number>>();
  peers.forEach((p, i) => {
    for (const text of p.podCIDRs) {
      const c = parseCidr4(text)!;
      let index = byBits.get(c.bits);
      if (!index) byBits.set(c.bits, (index = new Map()));
      index.set(c.bits === 0 ? 0 : c.net >>> (32 - c.bits), i);
    }
  });
  return [...byBits.entries()].sort((a, b) => b[0] - a[0]).map(([bits, index]) => Object.freeze({ bits, index }));
}

function deepFreezeCni(t: CniTable): CniTable {
  for (const p of t.peers) Object.freeze(Object.freeze(p).podCIDRs);
  for (const d of t.direct) Object.freeze(Object.freeze(d).podCIDRs);
  for (const r of t.routes) Object.freeze(r);
  Object.freeze(t.localPodCIDRs);
  Object.freeze(t.peers);
  Object.freeze(t.direct);
  Object.freeze(t.routes);
  Object.freeze(t.lookup);
  return Object.freeze(t);
}
