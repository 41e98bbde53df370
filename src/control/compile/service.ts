// Reading one Service's spec fields for compile(): type, cluster IPs, ports, affinity. Objects
// come from sources unvalidated, so every field is checked; problems become warnings that name
// the service and the field, and the service degrades (a port skipped, a default used) instead
// of failing the whole compile.

import type { Protocol, ServiceType, SessionAffinity } from "../table.ts";

/** Kubernetes' default for sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
export const DEFAULT_AFFINITY_TIMEOUT_SECONDS = 10_800;
/** Kubernetes' validation upper bound for the affinity timeout (1 day). */
const MAX_AFFINITY_TIMEOUT_SECONDS = 86_400;

const NO_AFFINITY: SessionAffinity = Object.freeze({ clientIP: false, timeoutSeconds: DEFAULT_AFFINITY_TIMEOUT_SECONDS });
export const NO_STRINGS: readonly string[] = Object.freeze([]);
const SERVICE_TYPES = new Set(["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]);

export interface PortSpec {
  name: string;
  port: number;
  protocol: Protocol;
  nodePort: number;
}

export function serviceType(spec: any, id: string, warn: (msg: string) => void): ServiceType {
  let type: string = spec.type ?? "ClusterIP";
  if (!SERVICE_TYPES.has(type)) {
    warn(`Service ${id}: unknown spec.type ${JSON.stringify(spec.type)}; treated as ClusterIP`);
    type = "ClusterIP";
  }
  if (type === "ExternalName") return "ExternalName";
  const first = Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0 ? spec.clusterIPs[0] : spec.clusterIP;
  if (first === "None") return "Headless";
  return type as ServiceType;
}

export function clusterIPsOf(spec: any): readonly string[] {
  if (Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0) return stringList(spec.clusterIPs);
  if (typeof spec.clusterIP === "string" && spec.clusterIP !== "") return Object.freeze([spec.clusterIP]);
  return NO_STRINGS;
}

export function stringList(v: unknown): readonly string[] {
  if (!Array.isArray(v) || v.length === 0) return NO_STRINGS;
  const out: string[] = [];
  for (let i = 0; i < v.length; i++) if (typeof v[i] === "string" && v[i] !== "") out.push(v[i]);
  return out.length === 0 ? NO_STRINGS : Object.freeze(out);
}

/** Valid TCP/UDP ports of a Service; SCTP and garbage are dropped with a warning. */
export function servicePorts(raw: unknown, id: string, warn: (msg: string) => void): PortSpec[] {
  if (!Array.isArray(raw)) return [];
  const out: PortSpec[] = [];
  for (let i = 0; i < raw.length; i++) {
    const p = raw[i];
    if (p === null || typeof p !== "object") {
      warn(`Service ${id}: spec.ports[${i}] is not an object; ignored`);
      continue;
    }
    const port = p.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      warn(`Service ${id}: spec.ports[${i}].port ${JSON.stringify(port)} is not a port number; ignored`);
      continue;
    }
    const protocol = p.protocol ?? "TCP";
    if (protocol !== "TCP" && protocol !== "UDP") {
      warn(`Service ${id}: port ${port}/${protocol} is not supported (TCP and UDP only); no listener for it`);
      continue;
    }
    if (out.some((o) => o.port === port && o.protocol === protocol)) {
      warn(`Service ${id}: port ${port}/${protocol} is listed twice; the first one is used`);
      continue;
    }
    const nodePort = Number.isInteger(p.nodePort) && p.nodePort > 0 && p.nodePort < 65536 ? p.nodePort : 0;
    out.push({ name: typeof p.name === "string" ? p.name : "", port, protocol, nodePort });
  }
  // In port-key order ("80/TCP" < "9/TCP": string order, like the keys themselves).
  if (out.length > 1) out.sort((a, b) => ((a.port + "/" + a.protocol) < (b.port + "/" + b.protocol) ? -1 : 1));
  return out;
}

export function affinityOf(spec: any, id: string, warn: (msg: string) => void): SessionAffinity {
  if (spec.sessionAffinity !== "ClientIP") return NO_AFFINITY;
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  if (timeout == null) return Object.freeze({ clientIP: true, timeoutSeconds: DEFAULT_AFFINITY_TIMEOUT_SECONDS });
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > MAX_AFFINITY_TIMEOUT_SECONDS) {
    warn(
      `Service ${id}: sessionAffinityConfig.clientIP.timeoutSeconds ${JSON.stringify(timeout)} is not in ` +
        `1..${MAX_AFFINITY_TIMEOUT_SECONDS}; using ${DEFAULT_AFFINITY_TIMEOUT_SECONDS}`,
    );
    return Object.freeze({ clientIP: true, timeoutSeconds: DEFAULT_AFFINITY_TIMEOUT_SECONDS });
  }
  return Object.freeze({ clientIP: true, timeoutSeconds: timeout });
}
