// Endpoints of one service port, from EndpointSlices (preferred) or a v1 Endpoints object.
// Semantics follow kube-proxy's EndpointSlice cache: a slice belongs to the service named by its
// kubernetes.io/service-name label; a slice port belongs to the service port with the same name
// and protocol (this is how named targetPorts are resolved: the slice already carries the
// number); ready == nil counts as ready; serving == nil means serving == ready; terminating
// endpoints are used only when no ready endpoint exists. Only addresses[0] is used (kube-proxy
// does the same: the others are alternates of one backend). Output is sorted by (ip, port) and
// deduplicated, since several slices of one service may list the same backend during churn.
//
// Hot spot of compile(): ~100k endpoints per run at the 10k-service benchmark, so no spreads,
// no per-endpoint closures, one frozen object per endpoint, all with the same shape.

import { isIP } from "node:net";
import type { Endpoint, Protocol } from "../table.ts";
import type { KubeObject } from "../objects.ts";

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";
/** v1beta1 slices carried the node in topology instead of nodeName. */
const TOPOLOGY_HOSTNAME = "kubernetes.io/hostname";

export const NO_ENDPOINTS: readonly Endpoint[] = Object.freeze([]);

/**
 * Collects endpoints for the service port (portName, protocol). With portName === null every
 * endpoint is taken with port 0 (headless services without ports still answer DNS).
 */
export class EndpointCollector {
  ready: Endpoint[] = [];
  /** Allocated on first use: most services never have a terminating endpoint. */
  terminating: Endpoint[] | null = null;

  fromSlices(slices: readonly KubeObject[], portName: string | null, protocol: Protocol): void {
    for (let s = 0; s < slices.length; s++) {
      const slice = slices[s]!;
      let port = 0;
      if (portName !== null) {
        port = slicePort(slice.ports, portName, protocol);
        if (port === 0) continue;
      }
      const eps = slice.endpoints;
      if (!Array.isArray(eps)) continue;
      for (let i = 0; i < eps.length; i++) addSliceEndpoint(this, eps[i], port);
    }
  }

  fromEndpoints(obj: KubeObject, portName: string | null, protocol: Protocol): void {
    const subsets = obj.subsets;
    if (!Array.isArray(subsets)) return;
    for (let s = 0; s < subsets.length; s++) {
      const subset = subsets[s];
      if (subset === null || typeof subset !== "object") continue;
      let port = 0;
      if (portName !== null) {
        port = slicePort(subset.ports, portName, protocol);
        if (port === 0) continue;
      }
      // notReadyAddresses are never used: Endpoints has no "terminating" notion to fall back on.
      const addresses = subset.addresses;
      if (!Array.isArray(addresses)) continue;
      for (let i = 0; i < addresses.length; i++) {
        const a = addresses[i];
        if (a === null || typeof a !== "object" || !validIP(a.ip)) continue;
        this.ready.push(endpoint(a.ip, port, str(a.nodeName), true, str(a.hostname), ""));
      }
    }
  }

  /** Ready endpoints, else terminating ones; sorted by (ip, port), deduplicated. */
  result(): readonly Endpoint[] {
    const list = this.ready.length > 0 ? this.ready : this.terminating;
    if (list === null || list.length === 0) return NO_ENDPOINTS;
    return Object.freeze(sortUnique(list));
  }
}

function addSliceEndpoint(into: EndpointCollector, ep: any, port: number): void {
  if (ep === null || typeof ep !== "object") return;
  const addresses = ep.addresses;
  if (!Array.isArray(addresses) || !validIP(addresses[0])) return;
  const c = ep.conditions;
  const ready = c == null || c.ready == null || c.ready === true;
  let node = str(ep.nodeName);
  if (node === "" && ep.topology != null) node = str(ep.topology[TOPOLOGY_HOSTNAME]);
  if (ready) {
    into.ready.push(endpoint(addresses[0], port, node, true, str(ep.hostname), str(ep.zone)));
    return;
  }
  const serving = c.serving == null ? ready : c.serving === true;
  if (serving && c.terminating === true) {
    (into.terminating ??= []).push(endpoint(addresses[0], port, node, false, str(ep.hostname), str(ep.zone)));
  }
}

/** The number of the port named `name` with `protocol` in a slice/subset ports list; 0 if none. */
function slicePort(ports: unknown, name: string, protocol: Protocol): number {
  if (!Array.isArray(ports)) return 0;
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i];
    if (p === null || typeof p !== "object") continue;
    if ((typeof p.name === "string" ? p.name : "") !== name) continue;
    if ((p.protocol ?? "TCP") !== protocol) continue;
    const n = p.port;
    if (Number.isInteger(n) && n > 0 && n < 65536) return n;
  }
  return 0;
}

function endpoint(ip: string, port: number, node: string, ready: boolean, hostname: string, zone: string): Endpoint {
  return Object.freeze({ ip, port, node, ready, hostname, zone });
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function validIP(v: unknown): v is string {
  if (typeof v !== "string") return false;
  return isIPv4(v) || (v.includes(":") && isIP(v) === 6);
}

/** Dotted-quad check without a regex: node's isIP costs ~100 ns a call, this ~10 ns. */
function isIPv4(v: string): boolean {
  const n = v.length;
  if (n < 7 || n > 15) return false;
  let parts = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? v.charCodeAt(i) : 46; // a virtual "." closes the last part
    if (c === 46) {
      if (digits === 0 || value > 255) return false;
      parts++;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // leading zero: "01" is ambiguous (octal?)
      value = value * 10 + (c - 48);
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return parts === 4;
}

function compareEndpoints(a: Endpoint, b: Endpoint): number {
  if (a.ip !== b.ip) return a.ip < b.ip ? -1 : 1;
  return a.port - b.port;
}

/** Stable sort, then drop later duplicates of (ip, port): the first slice listing one wins. */
export function sortUnique(list: Endpoint[]): Endpoint[] {
  list.sort(compareEndpoints);
  let w = 0;
  for (let r = 0; r < list.length; r++) {
    const e = list[r]!;
    if (w > 0) {
      const prev = list[w - 1]!;
      if (prev.ip === e.ip && prev.port === e.port) continue;
    }
    list[w++] = e;
  }
  list.length = w;
  return list;
}
