// Step 1 of compiling a table for DNS: the logical records of one service, by lower-cased dotted
// name. Pure; no wire format yet (templates.ts does that, zone.ts puts services together).
import type { ServiceRecord } from "../control/index.ts";
import { dashedIP, parseIPv4, parseIPv6, reverseName } from "./ip.ts";

export interface Srv {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

export interface NameData {
  readonly a: Set<string>;
  readonly aaaa: Set<string>;
  readonly srv: Srv[];
  readonly ptr: Set<string>;
  cname: string;
}

/** The forward names one service owns, and the PTR records it contributes. */
export interface ServiceNames {
  /** <name>.<ns>.svc.<domain> */
  readonly full: string;
  readonly name: string;
  readonly namespace: string;
  /** Full name, endpoint names and SRV owners, dotted, lower-cased, no trailing dot. */
  readonly names: Map<string, NameData>;
  /** [reverse name, target]: merged across services by the zone compiler. */
  readonly ptrs: [string, string][];
}

export interface RecordOptions {
  readonly domain: string;
  /** Dev mode: the A/AAAA of every ClusterIP-like service. */
  readonly serviceIP?: string;
}

/** The records of one service, or null when its names cannot be DNS names. */
export function serviceNames(svc: ServiceRecord, o: RecordOptions): ServiceNames | null {
  const ns = svc.namespace.toLowerCase();
  const name = svc.name.toLowerCase();
  if (!validLabel(ns) || !validLabel(name)) return null;
  const full = `${name}.${ns}.svc.${o.domain}`;
  const names = new Map<string, NameData>();
  const ptrs: [string, string][] = [];
  const get = (n: string): NameData => {
    let d = names.get(n);
    if (!d) names.set(n, (d = { a: new Set(), aaaa: new Set(), srv: [], ptr: new Set(), cname: "" }));
    return d;
  };
  const addIP = (n: string, ip: string) => {
    if (parseIPv4(ip)) get(n).a.add(ip);
    else if (parseIPv6(ip)) get(n).aaaa.add(ip);
  };
  const addPtr = (ip: string, target: string) => {
    const bytes = parseIPv4(ip) ?? parseIPv6(ip);
    if (bytes) ptrs.push([reverseName(bytes), target]);
  };
  get(full);
  addService(svc, full, o, get, addIP, addPtr);
  return { full, name, namespace: ns, names, ptrs };
}

/** Everything serviceNames() reads, as one string: equal strings give equal records. */
export function fingerprint(svc: ServiceRecord): string {
  let s = `${svc.type}|${svc.externalName}|${svc.clusterIPs.join(",")}|`;
  for (const p of svc.ports) s += `${p.name}:${p.port}/${p.protocol},`;
  s += "|";
  for (const e of svc.endpoints) s += `${e.ip}@${e.hostname},`;
  return s;
}

function addService(
  svc: ServiceRecord,
  full: string,
  o: RecordOptions,
  get: (n: string) => NameData,
  addIP: (n: string, ip: string) => void,
  addPtr: (ip: string, target: string) => void,
): void {
  if (svc.type === "ExternalName") {
    if (svc.externalName) get(full).cname = svc.externalName.toLowerCase().replace(/\.$/, "");
    return;
  }
  const headless = svc.type === "Headless";
  const targets: { name: string; ip: string }[] = [];
  if (headless) {
    for (const ep of svc.endpoints) {
      addIP(full, ep.ip);
      const host = ep.hostname && validLabel(ep.hostname.toLowerCase()) ? ep.hostname.toLowerCase() : dashedIP(ep.ip);
      const epName = `${host}.${full}`;
      addIP(epName, ep.ip);
      addPtr(ep.ip, epName);
      targets.push({ name: epName, ip: ep.ip });
    }
  } else {
    const ips = o.serviceIP ? [o.serviceIP] : svc.clusterIPs.filter((ip) => ip && ip !== "None");
    for (const ip of ips) addIP(full, ip);
    if (!o.serviceIP) for (const ip of ips) addPtr(ip, full);
    targets.push({ name: full, ip: "" });
  }
  for (const p of svc.ports) {
    const portName = p.name.toLowerCase();
    if (!portName || !validLabel(portName)) continue;
    const owner = `_${portName}._${p.protocol.toLowerCase()}.${full}`;
    const weight = Math.max(1, Math.floor(100 / Math.max(1, targets.length)));
    const srv = get(owner).srv;
    const seen = new Set<string>();
    for (const t of targets) {
      if (seen.has(t.name)) continue;
      seen.add(t.name);
      srv.push({ priority: 0, weight, port: p.port, target: t.name });
    }
  }
}

/** RFC 1123 label as Kubernetes names are; anything else cannot be served. */
function validLabel(s: string): boolean {
  return s.length > 0 && s.length <= 63 && /^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(s);
}
