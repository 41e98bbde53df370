// The desired nat rule set as iptables-restore text: a pure function of the route table and the
// proxy's listener addresses. Same input, same bytes: chains are declared in sorted order and
// rules inside a chain are sorted, so an unchanged table renders to the identical text and the
// syncer can skip the apply. Declaring a chain (`:NAME - [0:0]`) flushes it inside the restore
// transaction, so the text replaces our chains wholesale and touches nothing else (it is always
// applied with --noflush).

import type { RouteTable } from "../control/index.ts";
import {
  CANARY_COMMENT,
  CHAIN_NODEPORT_CONTAINER,
  CHAIN_NODEPORT_HOST,
  CHAIN_PORTALS_CONTAINER,
  CHAIN_PORTALS_HOST,
  OWN_CHAINS,
} from "./constants.ts";

export interface ListenerAddress {
  readonly host: string;
  readonly port: number;
  readonly protocol: "TCP" | "UDP";
}

export interface RenderInput {
  readonly table: RouteTable;
  /** ServicePort.key -> where the proxy listens for it. Ports without a listener get no rule. */
  readonly listeners: ReadonlyMap<string, ListenerAddress>;
  /** Optional: also send DNS for these cluster IPs (e.g. a kube-dns Service IP) to our server. */
  readonly dns?: { readonly clusterIPs: readonly string[]; readonly host: string; readonly port: number };
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** iptables (not ip6tables) rules: IPv6 cluster IPs are left out. */
export function isIPv4(ip: string): boolean {
  return IPV4.test(ip);
}

export function renderRules(input: RenderInput): string {
  const portals: string[] = [];
  const nodePorts: string[] = [];
  const bindHosts = new Set<string>();
  // One rule per (destination, protocol, port): the first service port (in key order) wins a
  // clash, e.g. two Services claiming the same externalIP:port.
  const seen = new Set<string>();

  const ports = [...input.table.ports].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const sp of ports) {
    const listener = input.listeners.get(sp.key);
    if (!listener || !isIPv4(listener.host) || !validPort(listener.port)) continue;
    const proto = sp.protocol === "UDP" ? "udp" : "tcp";
    const target = `${listener.host}:${listener.port}`;
    const name = sanitize(sp.key);
    bindHosts.add(listener.host);
    for (const ip of sp.clusterIPs) addPortal(portals, seen, ip, proto, sp.port, `${name} cluster IP`, target);
    for (const ip of sp.externalIPs) addPortal(portals, seen, ip, proto, sp.port, `${name} external IP`, target);
    if (validPort(sp.nodePort) && !seen.has(`node ${proto} ${sp.nodePort}`)) {
      seen.add(`node ${proto} ${sp.nodePort}`);
      nodePorts.push(`-p ${proto} -m ${proto} --dport ${sp.nodePort} -m comment --comment "${name} node port" -j DNAT --to-destination ${target}`);
    }
  }
  if (input.dns && isIPv4(input.dns.host) && validPort(input.dns.port)) {
    const target = `${input.dns.host}:${input.dns.port}`;
    for (const ip of input.dns.clusterIPs) {
      addPortal(portals, seen, ip, "udp", 53, "cluster DNS", target);
      addPortal(portals, seen, ip, "tcp", 53, "cluster DNS", target);
    }
  }
  portals.sort();
  nodePorts.sort();

  // Our own listener addresses are local too; a client of a listener must never be caught by a
  // NodePort rule that happens to use the same port number.
  const returns = [...bindHosts].sort().map((h) => `-d ${h}/32 -m comment --comment "edgemesh listeners" -j RETURN`);
  const canary = `-m comment --comment "${CANARY_COMMENT}"`;
  const toNodePorts = (chain: string) => `-m addrtype --dst-type LOCAL -m comment --comment "edgemesh node ports" -j ${chain}`;

  const body: Record<string, string[]> = {
    [CHAIN_PORTALS_CONTAINER]: [canary, ...portals, toNodePorts(CHAIN_NODEPORT_CONTAINER)],
    [CHAIN_PORTALS_HOST]: [canary, ...portals, toNodePorts(CHAIN_NODEPORT_HOST)],
    [CHAIN_NODEPORT_CONTAINER]: [canary, ...(nodePorts.length ? returns : []), ...nodePorts],
    [CHAIN_NODEPORT_HOST]: [canary, ...(nodePorts.length ? returns : []), ...nodePorts],
  };

  const out = ["*nat"];
  for (const chain of OWN_CHAINS) out.push(`:${chain} - [0:0]`);
  for (const chain of OWN_CHAINS) for (const rule of body[chain]!) out.push(`-A ${chain} ${rule}`);
  out.push("COMMIT", "");
  return out.join("\n");
}

/** Restore text that flushes and deletes all our chains (run after the jumps are gone). */
export function renderCleanup(): string {
  const out = ["*nat"];
  for (const chain of OWN_CHAINS) out.push(`:${chain} - [0:0]`);
  for (const chain of OWN_CHAINS) out.push(`-X ${chain}`);
  out.push("COMMIT", "");
  return out.join("\n");
}

function addPortal(out: string[], seen: Set<string>, ip: string, proto: string, port: number, comment: string, target: string): void {
  if (!isIPv4(ip) || !validPort(port)) return;
  const key = `${ip} ${proto} ${port}`;
  if (seen.has(key)) return;
  seen.add(key);
  out.push(`-d ${ip}/32 -p ${proto} -m ${proto} --dport ${port} -m comment --comment "${comment}" -j DNAT --to-destination ${target}`);
}

function validPort(port: number): boolean {
  return Number.isInteger(port) && port > 0 && port < 65536;
}

/** Comments are quoted in the restore text; Kubernetes names never hold these, but be sure. */
function sanitize(text: string): string {
  return text.replace(/["\\\n]/g, "_");
}
