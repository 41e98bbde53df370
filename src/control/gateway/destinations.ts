// route[].destination -> a ServicePort key. Istio resolves a short host in the VirtualService's
// namespace ("web"), and accepts "web.ns", "web.ns.svc" and the full "web.ns.svc.<domain>"; a
// destination without a port goes to the Service's only port. An unknown Service or port is a
// warning and an unresolved destination (503 for its share of requests), so a VirtualService
// written before its Service still applies once the Service appears (the recompile follows).

import type { KubeObject } from "../objects.ts";
import { portKey } from "../table.ts";
import type { Destination } from "./types.ts";

export interface ServiceIndex {
  /** By "namespace/name". */
  get(key: string): KubeObject | undefined;
}

export function resolveService(host: string, vsNamespace: string, clusterDomain: string): { namespace: string; name: string } | null {
  const h = host.trim().toLowerCase().replace(/\.$/, "");
  if (h === "" || h.includes("*") || h.includes("/")) return null;
  const parts = h.split(".");
  if (parts.length === 1) return { namespace: vsNamespace, name: parts[0]! };
  if (parts.length === 2) return { namespace: parts[1]!, name: parts[0]! };
  if (parts.length === 3 && parts[2] === "svc") return { namespace: parts[1]!, name: parts[0]! };
  if (parts[2] === "svc" && parts.slice(3).join(".") === clusterDomain) return { namespace: parts[1]!, name: parts[0]! };
  return null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Compiles route[] (HTTPRouteDestination / RouteDestination) into weighted destinations.
 * Weights are relative; when none is set every destination weighs the same (Istio: a lone
 * destination takes all traffic). Returns [] when route is missing or empty.
 */
export function compileDestinations(
  route: unknown,
  field: string,
  vsNamespace: string,
  services: ServiceIndex,
  clusterDomain: string,
  warn: (msg: string) => void,
): { destinations: Destination[]; totalWeight: number } {
  if (!Array.isArray(route) || route.length === 0) return { destinations: [], totalWeight: 0 };
  const out: Destination[] = [];
  const anyWeight = route.some((r) => isRecord(r) && typeof r.weight === "number" && r.weight > 0);
  route.forEach((r, i) => {
    const f = `${field}[${i}]`;
    if (!isRecord(r) || !isRecord(r.destination)) {
      warn(`${f}.destination: missing or not an object; destination ignored`);
      return;
    }
    const d = r.destination;
    if (typeof d.host !== "string" || d.host.trim() === "") {
      warn(`${f}.destination.host: expected a service name, got ${JSON.stringify(d.host)}; destination ignored`);
      return;
    }
    let weight = 1;
    if (anyWeight) {
      weight = typeof r.weight === "number" && r.weight > 0 ? r.weight : 0;
      if (r.weight !== undefined && (typeof r.weight !== "number" || r.weight < 0)) warn(`${f}.weight: expected a number >= 0, got ${JSON.stringify(r.weight)}; 0 used`);
    }
    if (weight === 0) return;
    if (d.subset !== undefined) warn(`${f}.destination.subset ${JSON.stringify(d.subset)}: subsets are not supported; all endpoints of the service are used`);
    if (r.headers !== undefined) warn(`${f}.headers: per-destination header changes are not supported; ignored`);
    const host = d.host.trim();
    const svc = resolveService(host, vsNamespace, clusterDomain);
    let port = 0;
    let key = "";
    const wantPort = isRecord(d.port) ? d.port.number : undefined;
    if (wantPort !== undefined && (typeof wantPort !== "number" || !Number.isInteger(wantPort) || wantPort < 1 || wantPort > 65535)) {
      warn(`${f}.destination.port.number: expected a port number, got ${JSON.stringify(wantPort)}; destination unresolved (503)`);
    } else if (svc === null) {
      warn(`${f}.destination.host ${JSON.stringify(host)}: not a service of this cluster (name, name.namespace or name.namespace.svc.${clusterDomain}); destination unresolved (503)`);
    } else {
      const found = services.get(`${svc.namespace}/${svc.name}`);
      const ports: unknown[] = Array.isArray(found?.spec?.ports) ? found!.spec.ports : [];
      const tcpPorts = ports.filter((p): p is Record<string, unknown> => isRecord(p) && (p.protocol === undefined || p.protocol === "TCP") && typeof p.port === "number");
      if (found === undefined) {
        warn(`${f}.destination.host ${JSON.stringify(host)}: Service ${svc.namespace}/${svc.name} not found; unresolved (503) until it exists`);
        port = typeof wantPort === "number" ? wantPort : 0;
      } else if (typeof wantPort === "number") {
        port = wantPort;
        if (!tcpPorts.some((p) => p.port === wantPort)) warn(`${f}.destination.port.number ${wantPort}: Service ${svc.namespace}/${svc.name} has no TCP port ${wantPort}; unresolved (503)`);
      } else if (tcpPorts.length === 1) {
        port = tcpPorts[0]!.port as number;
      } else {
        warn(`${f}.destination.port: Service ${svc.namespace}/${svc.name} has ${tcpPorts.length} TCP ports; name one; unresolved (503)`);
      }
      if (port > 0) key = portKey(svc.namespace, svc.name, port, "TCP");
    }
    out.push(Object.freeze({ service: svc ? `${svc.namespace}/${svc.name}` : host, port, key, weight, host }));
  });
  let total = 0;
  for (const d of out) total += d.weight;
  return { destinations: out, totalWeight: total };
}
