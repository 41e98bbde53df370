// What a killed EdgeMesh agent leaves in a node's iptables, and what kube-proxy in iptables mode
// keeps there beside it, as iptables commands in the order and with the arguments their code uses:
// EdgeMesh v1.12+ runs kube-proxy v1.23's userspace proxier (pkg/proxy/userspace/proxier.go:
// iptablesInit, openOnePortal, openNodePort, iptablesCommonPortalArgs, DNAT to its listen IP, the
// bridge IP), kube-proxy's iptables mode writes KUBE-SERVICES and friends (pkg/proxy/iptables).
// Used by the detector's unit fixtures (generated from real iptables-save in a namespace) and by
// the migration e2e.

export interface EdgeMeshService {
  /** ServicePortName.String(): "namespace/name:port-name". */
  readonly name: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly protocol: "tcp" | "udp";
  /** EdgeMesh's listener port on the bridge IP. */
  readonly proxyPort: number;
  readonly nodePort?: number;
  readonly externalIPs?: readonly string[];
}

const CLUSTER_IPS_COMMENT = "handle ClusterIPs; NOTE: this must be before the NodePort rules";
const NODEPORTS_COMMENT = "handle service NodePorts; NOTE: this must be the last rule in the chain";
const NON_LOCAL_COMMENT = "Ensure that non-local NodePort traffic can flow";

/** iptables argument lists (without the binary) that recreate EdgeMesh's rules. */
export function edgemeshLeftoverCommands(bridgeIP: string, services: readonly EdgeMeshService[]): string[][] {
  const out: string[][] = [];
  // iptablesInit: EnsureChain + EnsureRule(Prepend/Append) into the built-in chains.
  out.push(["-t", "nat", "-N", "KUBE-PORTALS-CONTAINER"]);
  out.push(["-t", "nat", "-I", "PREROUTING", "1", "-m", "comment", "--comment", CLUSTER_IPS_COMMENT, "-j", "KUBE-PORTALS-CONTAINER"]);
  out.push(["-t", "nat", "-N", "KUBE-PORTALS-HOST"]);
  out.push(["-t", "nat", "-I", "OUTPUT", "1", "-m", "comment", "--comment", CLUSTER_IPS_COMMENT, "-j", "KUBE-PORTALS-HOST"]);
  const local = ["-m", "addrtype", "--dst-type", "LOCAL", "-m", "comment", "--comment", NODEPORTS_COMMENT];
  out.push(["-t", "nat", "-N", "KUBE-NODEPORT-CONTAINER"]);
  out.push(["-t", "nat", "-A", "PREROUTING", ...local, "-j", "KUBE-NODEPORT-CONTAINER"]);
  out.push(["-t", "nat", "-N", "KUBE-NODEPORT-HOST"]);
  out.push(["-t", "nat", "-A", "OUTPUT", ...local, "-j", "KUBE-NODEPORT-HOST"]);
  out.push(["-t", "filter", "-N", "KUBE-NODEPORT-NON-LOCAL"]);
  out.push(["-t", "filter", "-I", "INPUT", "1", "-m", "comment", "--comment", NON_LOCAL_COMMENT, "-j", "KUBE-NODEPORT-NON-LOCAL"]);

  for (const s of services) {
    const common = (dport: number, dest?: string) => ["-m", "comment", "--comment", s.name, "-p", s.protocol, "-m", s.protocol, "--dport", String(dport), ...(dest ? ["-d", dest] : [])];
    const dnat = ["-j", "DNAT", "--to-destination", `${bridgeIP}:${s.proxyPort}`];
    // openOnePortal for the cluster IP: one from-containers, one from-host rule.
    out.push(["-t", "nat", "-A", "KUBE-PORTALS-CONTAINER", ...common(s.port, s.clusterIP), ...dnat]);
    out.push(["-t", "nat", "-A", "KUBE-PORTALS-HOST", ...common(s.port, s.clusterIP), ...dnat]);
    // An external IP: containers (not from a bridge port), containers to a local address, host.
    for (const ip of s.externalIPs ?? []) {
      out.push(["-t", "nat", "-A", "KUBE-PORTALS-CONTAINER", ...common(s.port, ip), "-m", "physdev", "!", "--physdev-is-in", ...dnat]);
      out.push(["-t", "nat", "-A", "KUBE-PORTALS-CONTAINER", ...common(s.port, ip), "-m", "addrtype", "--dst-type", "LOCAL", ...dnat]);
      out.push(["-t", "nat", "-A", "KUBE-PORTALS-HOST", ...common(s.port, ip), "-m", "addrtype", "--dst-type", "LOCAL", ...dnat]);
    }
    if (s.nodePort) {
      out.push(["-t", "nat", "-A", "KUBE-NODEPORT-CONTAINER", ...common(s.nodePort), ...dnat]);
      out.push(["-t", "nat", "-A", "KUBE-NODEPORT-HOST", ...common(s.nodePort), ...dnat]);
      out.push(["-t", "filter", "-A", "KUBE-NODEPORT-NON-LOCAL", ...common(s.proxyPort), "-m", "state", "--state", "NEW", "-j", "ACCEPT"]);
    }
  }
  return out;
}

/** A ClusterIP service kube-proxy (iptables mode) sends to `endpoint` ("ip:port"). */
export interface KubeProxyService {
  readonly name: string;
  readonly clusterIP: string;
  readonly port: number;
  readonly endpoint: string;
  readonly svcChain: string;
  readonly sepChain: string;
}

/** kube-proxy iptables mode's chains and rules for these services (nat and filter). */
export function kubeProxyCommands(podCidr: string, services: readonly KubeProxyService[]): string[][] {
  const out: string[][] = [];
  for (const c of ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]) out.push(["-t", "nat", "-N", c]);
  out.push(["-t", "nat", "-A", "PREROUTING", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"]);
  out.push(["-t", "nat", "-A", "OUTPUT", "-m", "comment", "--comment", "kubernetes service portals", "-j", "KUBE-SERVICES"]);
  out.push(["-t", "nat", "-A", "POSTROUTING", "-m", "comment", "--comment", "kubernetes postrouting rules", "-j", "KUBE-POSTROUTING"]);
  out.push(["-t", "nat", "-A", "KUBE-MARK-MASQ", "-j", "MARK", "--or-mark", "0x4000"]);
  out.push(["-t", "nat", "-A", "KUBE-POSTROUTING", "-m", "mark", "!", "--mark", "0x4000/0x4000", "-j", "RETURN"]);
  out.push(["-t", "nat", "-A", "KUBE-POSTROUTING", "-j", "MARK", "--xor-mark", "0x4000"]);
  out.push(["-t", "nat", "-A", "KUBE-POSTROUTING", "-m", "comment", "--comment", "kubernetes service traffic requiring SNAT", "-j", "MASQUERADE"]);
  for (const s of services) {
    const [ip, port] = s.endpoint.split(":");
    const svcComment = `${s.name} cluster IP`;
    out.push(["-t", "nat", "-N", s.svcChain], ["-t", "nat", "-N", s.sepChain]);
    out.push(["-t", "nat", "-A", "KUBE-SERVICES", "-d", `${s.clusterIP}/32`, "-p", "tcp", "-m", "comment", "--comment", svcComment, "-m", "tcp", "--dport", String(s.port), "-j", s.svcChain]);
    out.push(["-t", "nat", "-A", s.svcChain, "!", "-s", podCidr, "-d", `${s.clusterIP}/32`, "-p", "tcp", "-m", "comment", "--comment", svcComment, "-m", "tcp", "--dport", String(s.port), "-j", "KUBE-MARK-MASQ"]);
    out.push(["-t", "nat", "-A", s.svcChain, "-m", "comment", "--comment", `${s.name} -> ${s.endpoint}`, "-j", s.sepChain]);
    out.push(["-t", "nat", "-A", s.sepChain, "-s", `${ip}/32`, "-m", "comment", "--comment", s.name, "-j", "KUBE-MARK-MASQ"]);
    out.push(["-t", "nat", "-A", s.sepChain, "-p", "tcp", "-m", "comment", "--comment", s.name, "-m", "tcp", "-j", "DNAT", "--to-destination", `${ip}:${port}`]);
  }
  out.push([
    "-t", "nat", "-A", "KUBE-SERVICES", "-m", "comment", "--comment", "kubernetes service nodeports; NOTE: this must be the last rule in this chain",
    "-m", "addrtype", "--dst-type", "LOCAL", "-j", "KUBE-NODEPORTS",
  ]);
  for (const c of ["KUBE-FORWARD", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-FIREWALL"]) out.push(["-t", "filter", "-N", c]);
  out.push(["-t", "filter", "-A", "INPUT", "-m", "comment", "--comment", "kubernetes health check service ports", "-j", "KUBE-NODEPORTS"]);
  out.push(["-t", "filter", "-A", "INPUT", "-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "kubernetes externally visible service portals", "-j", "KUBE-EXTERNAL-SERVICES"]);
  out.push(["-t", "filter", "-A", "INPUT", "-j", "KUBE-FIREWALL"]);
  out.push(["-t", "filter", "-A", "FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD"]);
  out.push(["-t", "filter", "-A", "KUBE-FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP"]);
  out.push(["-t", "filter", "-A", "KUBE-FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-m", "mark", "--mark", "0x4000/0x4000", "-j", "ACCEPT"]);
  out.push([
    "-t", "filter", "-A", "KUBE-FIREWALL", "!", "-s", "127.0.0.0/8", "-d", "127.0.0.0/8", "-m", "comment", "--comment", "block incoming localnet connections",
    "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP",
  ]);
  return out;
}

/** The services the fixtures and the e2e use (a TCP one with a NodePort and an external IP, a UDP one). */
export const LEFTOVER_SERVICES: readonly EdgeMeshService[] = [
  { name: "default/web:http", clusterIP: "10.96.0.10", port: 80, protocol: "tcp", proxyPort: 40127, nodePort: 30080, externalIPs: ["192.0.2.10"] },
  { name: "kube-system/kube-dns:dns", clusterIP: "10.96.0.53", port: 53, protocol: "udp", proxyPort: 41002 },
  { name: "default/legacy:http", clusterIP: "10.96.0.30", port: 80, protocol: "tcp", proxyPort: 40131 },
];
