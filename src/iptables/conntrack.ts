// UDP and conntrack: a DNAT decision is made once per flow and remembered by conntrack, and a
// UDP flow that keeps sending keeps its entry alive. So when a UDP service's listener moves (the
// agent restarted, a port changed) or the service goes away, clients would keep hitting the old
// target forever. After each apply we delete the entries of UDP destinations whose target
// changed, as kube-proxy does; on the first apply, of every UDP destination (a previous agent may
// have used other listener ports). TCP needs none of this: a dead target resets the connection.

import type { RouteTable } from "../control/index.ts";
import type { IptablesExec } from "./exec.ts";
import { isIPv4, type ListenerAddress } from "./render.ts";

/** "ip:port" (cluster/external IP) or ":port" (node port, any local address) -> listener target. */
export type UdpTargets = Map<string, string>;

export function udpTargets(table: RouteTable, listeners: ReadonlyMap<string, ListenerAddress>): UdpTargets {
  const out: UdpTargets = new Map();
  for (const sp of table.ports) {
    if (sp.protocol !== "UDP") continue;
    const l = listeners.get(sp.key);
    if (!l) continue;
    const target = `${l.host}:${l.port}`;
    for (const ip of [...sp.clusterIPs, ...sp.externalIPs]) if (isIPv4(ip)) out.set(`${ip}:${sp.port}`, target);
    if (sp.nodePort > 0) out.set(`:${sp.nodePort}`, target);
  }
  return out;
}

/** Destinations whose flows must be forgotten going from `before` (null: unknown) to `after`. */
export function staleUdpDestinations(before: UdpTargets | null, after: UdpTargets): string[] {
  const out: string[] = [];
  if (before === null) return [...after.keys()].sort();
  for (const [dst, target] of before) if (after.get(dst) !== target) out.push(dst);
  return out.sort();
}

/** Delete conntrack entries for these destinations. Returns how many commands failed. */
export async function clearUdpFlows(exec: IptablesExec, destinations: readonly string[]): Promise<number> {
  if (!exec.conntrack) return 0;
  let failures = 0;
  for (const dst of destinations) {
    const i = dst.lastIndexOf(":");
    const ip = dst.slice(0, i);
    const port = dst.slice(i + 1);
    const args = ["-D", "-p", "udp", ...(ip ? ["--orig-dst", ip] : []), "--orig-port-dst", port];
    const res = await exec.conntrack(args);
    // Exit 1 with "0 flow entries" just means there was nothing to delete.
    if (res.code !== 0 && !/0 flow entries/.test(res.stderr)) failures++;
  }
  return failures;
}
