// Building blocks of the zone compiler: names encoded once with their templates (Prepared), one
// service's worth of them (ServiceMemo, kept while the service's fingerprint is unchanged), and
// put/remove on a zone's entry map.
import type { ServiceRecord } from "../control/index.ts";
import { fingerprint, serviceNames } from "./records.ts";
import { type NameEntry, NODATA_MARK, type Template, templatesFor } from "./templates.ts";
import { encodeName, hashName } from "./wire.ts";

export type Entries = Map<number, NameEntry | NameEntry[]>;

/** A name encoded and hashed once, with its entry. */
export interface Prepared {
  readonly hash: number;
  readonly entry: NameEntry;
}

export interface ServiceMemo {
  /** "namespace/name" as in the table. */
  readonly key: string;
  readonly fp: string;
  /** Lower-cased. */
  readonly name: string;
  readonly namespace: string;
  /** Full name, endpoint names, SRV owners, empty non-terminals below the service, and the
   *  <svc>.<ns>.svc and <svc>.<ns> aliases. */
  readonly own: readonly Prepared[];
  /** The bare service name: put only while no other namespace has a service of that name. */
  readonly short: Prepared;
  /** Reverse name -> the names it points to; merged across services by the compiler. */
  readonly ptrs: ReadonlyMap<string, readonly string[]>;
}

export function prepare(dotted: string, byType: ReadonlyMap<number, Template>): Prepared {
  const name = encodeName(dotted);
  const qtypes: number[] = [];
  const tpls: Template[] = [];
  for (const [qtype, tpl] of byType) {
    if (qtype === 0) continue;
    qtypes.push(qtype);
    tpls.push(tpl);
  }
  return { hash: hashName(name), entry: { name, qtypes, tpls, other: byType.get(0) ?? NODATA_MARK } };
}

export const nodataOnly = (dotted: string) => prepare(dotted, new Map([[0, NODATA_MARK]]));

export function preparePtr(rev: string, targets: Iterable<string>, ttl: number, domain: string): Prepared {
  const data = { a: new Set<string>(), aaaa: new Set<string>(), srv: [], ptr: new Set(targets), cname: "" };
  return prepare(rev, templatesFor(data, new Map(), ttl, domain));
}

/** The memo for one service, or null when its names cannot be DNS names. */
export function memoService(
  svc: ServiceRecord, o: { domain: string; ttl: number; serviceIP?: string },
): ServiceMemo | null {
  const s = serviceNames(svc, { domain: o.domain, serviceIP: o.serviceIP });
  if (s === null) return null;
  const own: Prepared[] = [];
  const seen = new Set(s.names.keys());
  let full: Map<number, Template> = new Map();
  for (const [n, data] of s.names) {
    const byType = templatesFor(data, s.names, o.ttl, o.domain);
    if (n === s.full) full = byType;
    own.push(prepare(n, byType));
  }
  // Empty non-terminals below the service (_tcp.<full>): NODATA, not NXDOMAIN (RFC 8020).
  for (const n of s.names.keys()) {
    const parent = n.slice(n.indexOf(".") + 1);
    if (n.startsWith("_") && !seen.has(parent)) {
      seen.add(parent);
      own.push(nodataOnly(parent));
    }
  }
  own.push(prepare(`${s.name}.${s.namespace}.svc`, full), prepare(`${s.name}.${s.namespace}`, full));
  const ptrs = new Map<string, string[]>();
  for (const [rev, target] of s.ptrs) ptrs.set(rev, [...(ptrs.get(rev) ?? []), target]);
  return {
    key: `${svc.namespace}/${svc.name}`, fp: fingerprint(svc), name: s.name, namespace: s.namespace, own,
    short: prepare(s.name, full), ptrs,
  };
}

/** Add p's entry; an entry of the same name is replaced. */
export function putEntry(entries: Entries, p: Prepared): void {
  const e = p.entry;
  const old = entries.get(p.hash);
  if (old === undefined || (!Array.isArray(old) && sameWire(old.name, e.name))) {
    entries.set(p.hash, e);
    return;
  }
  const list = Array.isArray(old) ? [...old] : [old]; // copied: an older zone may share the array
  const at = list.findIndex((x) => sameWire(x.name, e.name));
  if (at >= 0) list[at] = e;
  else list.push(e);
  entries.set(p.hash, list);
}

/** Remove exactly p's entry (a newer entry of the same name stays). */
export function removeEntry(entries: Entries, p: Prepared): void {
  const old = entries.get(p.hash);
  if (old === p.entry) entries.delete(p.hash);
  else if (Array.isArray(old) && old.includes(p.entry)) {
    const rest = old.filter((x) => x !== p.entry);
    if (rest.length === 1) entries.set(p.hash, rest[0]!);
    else entries.set(p.hash, rest);
  }
}

function sameWire(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
