// Step 1 of compiling a table for DNS: the logical records of the cluster zone, by lower-cased
// dotted name. Pure; no wire format yet (templates.ts does that).
import type { RouteTable, ServiceRecord } from "../control/index.ts";
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

export interface ZoneRecords {
  /** Full names in the zone and reverse (PTR) names, dotted, lower-cased, no trailing dot. */
  readonly names: Map<string, NameData>;
  /** Short forms answered directly (alias -> full name); see index.ts for the rules. */
  readonly aliases: Map<string, string>;
  /** Services skipped because their names cannot be DNS names. */
  readonly skipped: string[];
}

export interface RecordOptions {
  readonly domain: string;
  /** Dev mode: the A/AAAA of every ClusterIP-like service. */
  readonly serviceIP?: string;
}

export function collectRecords(table: RouteTable, o: RecordOptions): ZoneRecords {
  const domain = o.domain.toLowerCase().replace(/\.$/, "");
  const names = new Map<string, NameData>();
  const aliases = new Map<string, string>();
  const skipped: string[] = [];
  const get = (name: string): NameData => {
    let d = names.get(name);
    if (!d) names.set(name, (d = { a: new Set(), aaaa: new Set(), srv: [], ptr: new Set(), cname: "" }));
    return d;
  };
  const addIP = (name: string, ip: string) => {
    if (parseIPv4(ip)) get(name).a.add(ip);
    else if (parseIPv6(ip)) get(name).aaaa.add(ip);
  };
  const addPtr = (ip: string, target: string) => {
    const bytes = parseIPv4(ip) ?? parseIPv6(ip);
    if (bytes) get(reverseName(bytes)).ptr.add(target);
  };
  const byShortName = new Map<string, string[]>();
  for (const svc of table.services) {
    const ns = svc.namespace.toLowerCase();
    const name = svc.name.toLowerCase();
    if (!validLabel(ns) || !validLabel(name)) {
      skipped.push(`${svc.namespace}/${svc.name}`);
      continue;
    }
    const full = `${name}.${ns}.svc.${domain}`;
    get(full);
    aliases.set(`${name}.${ns}.svc`, full);
    aliases.set(`${name}.${ns}`, full);
    const list = byShortName.get(name) ?? [];
    list.push(full);
    byShortName.set(name, list);
    addService(svc, full, o, get, addIP, addPtr);
  }
  // A single label is answered only when exactly one namespace has a service of that name;
  // otherwise the answer would depend on which namespace we guessed.
  for (const [short, fulls] of byShortName) if (fulls.length === 1) aliases.set(short, fulls[0]!);
  return { names, aliases, skipped };
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
