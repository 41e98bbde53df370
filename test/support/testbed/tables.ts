// Small RouteTable builders for iptables tests: only the fields the renderer reads matter, the
// rest get Kubernetes defaults.

import { deepFreeze, portKey, type Protocol, type RouteTable, type ServicePort } from "../../../src/control/index.ts";
import type { ListenerAddress } from "../../../src/iptables/index.ts";

export interface PortSpec {
  ns?: string;
  name: string;
  port: number;
  protocol?: Protocol;
  clusterIPs?: string[];
  nodePort?: number;
  externalIPs?: string[];
}

export function servicePort(s: PortSpec): ServicePort {
  const ns = s.ns ?? "default";
  const protocol = s.protocol ?? "TCP";
  return {
    key: portKey(ns, s.name, s.port, protocol),
    namespace: ns,
    name: s.name,
    portName: "",
    port: s.port,
    protocol,
    clusterIPs: s.clusterIPs ?? [],
    nodePort: s.nodePort ?? 0,
    externalIPs: s.externalIPs ?? [],
    policy: { kind: "ROUND_ROBIN" },
    affinity: { clientIP: false, timeoutSeconds: 10800 },
    endpoints: [],
  };
}

export function tableOf(version: number, specs: PortSpec[]): RouteTable {
  const ports = specs.map(servicePort).sort((a, b) => (a.key < b.key ? -1 : 1));
  const byKey: Record<string, ServicePort> = Object.create(null);
  for (const p of ports) byKey[p.key] = p;
  return deepFreeze({ version, compiledAt: 0, ports, byKey, services: [] });
}

/** Listeners on one host, ports assigned in key order from `firstPort`. */
export function listenersFor(table: RouteTable, host = "169.254.96.16", firstPort = 40000): Map<string, ListenerAddress> {
  const out = new Map<string, ListenerAddress>();
  table.ports.forEach((p, i) => out.set(p.key, { host, port: firstPort + i, protocol: p.protocol }));
  return out;
}
