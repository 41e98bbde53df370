// Step 3: a whole table into a Zone, the lookup structure the hot path reads. A table publish
// rebuilds the Zone, but each service's names and templates are kept between compiles and reused
// while the service's DNS-relevant fields (its fingerprint) are unchanged, so a publish costs
// roughly one Map insert per name instead of re-encoding 10k services.
import type { RouteTable } from "../control/index.ts";
import { fingerprint, serviceNames } from "./records.ts";
import { type NameEntry, negativeTemplates, NODATA_MARK, type Template, templatesFor, type Zone } from "./templates.ts";
import { encodeName, hashName, TYPE_SOA } from "./wire.ts";

export interface ZoneOptions {
  readonly domain: string;
  /** Seconds, for every record and the SOA minimum. */
  readonly ttl: number;
  /** Dev mode: the A/AAAA of every ClusterIP-like service. */
  readonly serviceIP?: string;
}

export interface ZoneCompiler {
  compile(table: RouteTable): Zone;
}

/** A name encoded and hashed once, with its entry, reused while the name's data is unchanged. */
interface Prepared {
  readonly hash: number;
  readonly entry: NameEntry;
  readonly byType: Map<number, Template>;
}

interface ServiceMemo {
  readonly fp: string;
  readonly name: string;
  readonly namespace: string;
  /** Own names, then the svc.ns.svc and svc.ns aliases of the full name (last two). */
  readonly prepared: Prepared[];
  readonly full: Map<number, Template>;
  /** The bare service name, used only when no other namespace has a service of that name. */
  readonly short: Prepared;
  /** PTR names of this service's IPs; merged at compile time when two services share an IP. */
  readonly ptrs: Prepared[];
}

function prepare(dotted: string, byType: Map<number, Template>): Prepared {
  const name = encodeName(dotted);
  const qtypes: number[] = [];
  const tpls: Template[] = [];
  for (const [qtype, tpl] of byType) {
    if (qtype === 0) continue;
    qtypes.push(qtype);
    tpls.push(tpl);
  }
  return { hash: hashName(name), entry: { name, qtypes, tpls, other: byType.get(0) ?? NODATA_MARK }, byType };
}

function sameWire(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function createZoneCompiler(o: ZoneOptions): ZoneCompiler {
  const domain = o.domain.toLowerCase().replace(/\.$/, "");
  const ttl = o.ttl >>> 0;
  const domainWire = encodeName(domain);
  let memo = new Map<string, ServiceMemo>();
  /** The PTR targets behind each PTR entry, for the rare merge of two services' records. */
  const ptrTargetsOf = new WeakMap<NameEntry, string[]>();
  const preparePtr = (rev: string, targets: string[]): Prepared => {
    const data = { a: new Set<string>(), aaaa: new Set<string>(), srv: [], ptr: new Set(targets), cname: "" };
    const p = prepare(rev, templatesFor(data, new Map(), ttl, domain));
    ptrTargetsOf.set(p.entry, targets);
    return p;
  };

  const memoFor = (svc: RouteTable["services"][number]): ServiceMemo | null => {
    const key = `${svc.namespace}/${svc.name}`;
    const fp = fingerprint(svc);
    const old = memo.get(key);
    if (old !== undefined && old.fp === fp) return old;
    const s = serviceNames(svc, { domain, serviceIP: o.serviceIP });
    if (s === null) return null;
    const prepared: Prepared[] = [];
    const own = new Set(s.names.keys());
    for (const [n, data] of s.names) prepared.push(prepare(n, templatesFor(data, s.names, ttl, domain)));
    // Empty non-terminals below the service (_tcp.<full>): NODATA, not NXDOMAIN (RFC 8020).
    for (const n of s.names.keys()) {
      if (!n.startsWith("_")) continue;
      const parent = n.slice(n.indexOf(".") + 1);
      if (!own.has(parent)) {
        own.add(parent);
        prepared.push(prepare(parent, new Map([[0, NODATA_MARK]])));
      }
    }
    const full = prepared[0]!.byType; // serviceNames() creates the full name first
    prepared.push(prepare(`${s.name}.${s.namespace}.svc`, full), prepare(`${s.name}.${s.namespace}`, full));
    const byRev = new Map<string, string[]>();
    for (const [rev, target] of s.ptrs) byRev.set(rev, [...(byRev.get(rev) ?? []), target]);
    const ptrs = [...byRev].map(([rev, targets]) => preparePtr(rev, targets));
    return { fp, name: s.name, namespace: s.namespace, prepared, full, short: prepare(s.name, full), ptrs };
  };

  return {
    compile(table) {
      const neg = negativeTemplates(domain, table.version, ttl);
      const entries = new Map<number, NameEntry | NameEntry[]>();
      let count = 0;
      // A later put of the same name replaces the earlier one (real names are put after aliases).
      const put = (p: Prepared) => {
        const e = p.entry;
        const old = entries.get(p.hash);
        if (old === undefined || (!Array.isArray(old) && sameWire(old.name, e.name))) {
          if (old === undefined) count++;
          entries.set(p.hash, e);
          return;
        }
        const list = Array.isArray(old) ? old : [old];
        const at = list.findIndex((x) => sameWire(x.name, e.name));
        if (at >= 0) list[at] = e;
        else {
          list.push(e);
          count++;
        }
        entries.set(p.hash, list);
      };
      // Two services with one IP (or a ClusterIP that is also an endpoint): one PTR set for both.
      const putPtr = (p: Prepared) => {
        const old = entries.get(p.hash);
        const list = old === undefined ? [] : Array.isArray(old) ? old : [old];
        const same = list.find((x) => sameWire(x.name, p.entry.name));
        const before = same && ptrTargetsOf.get(same);
        if (!before) return put(p);
        const rev = decodeName(p.entry.name);
        put(preparePtr(rev, [...new Set([...before, ...ptrTargetsOf.get(p.entry)!])]));
      };
      const next = new Map<string, ServiceMemo>();
      const skipped: string[] = [];
      const namespaces = new Set<string>();
      const byShortName = new Map<string, ServiceMemo | null>();
      for (const svc of table.services) {
        const m = memoFor(svc);
        if (m === null) {
          skipped.push(`${svc.namespace}/${svc.name}`);
          continue;
        }
        next.set(`${svc.namespace}/${svc.name}`, m);
        namespaces.add(m.namespace);
        // A single label is answered only when exactly one namespace has a service of that name.
        byShortName.set(m.name, byShortName.has(m.name) ? null : m);
      }
      memo = next;
      // Aliases first, so a real name that happens to equal an alias is found first in its chain.
      for (const m of next.values()) {
        const n = m.prepared.length;
        put(m.prepared[n - 2]!);
        put(m.prepared[n - 1]!);
      }
      for (const m of byShortName.values()) if (m !== null) put(m.short);
      for (const m of next.values()) for (let i = 0; i < m.prepared.length - 2; i++) put(m.prepared[i]!);
      for (const m of next.values()) for (const p of m.ptrs) putPtr(p);
      for (const ns of namespaces) put(prepare(`${ns}.svc.${domain}`, new Map([[0, NODATA_MARK]])));
      put(prepare(`svc.${domain}`, new Map([[0, NODATA_MARK]])));
      put(prepare(domain, new Map([[0, NODATA_MARK], [TYPE_SOA, neg.apexSoa]])));
      return {
        version: table.version, domain: domainWire, entries, nodata: neg.nodata, nxdomain: neg.nxdomain, names: count, skipped,
      };
    },
  };

}

/** One-shot compile (tests, tools); the server keeps a compiler to reuse unchanged services. */
export function compileZone(table: RouteTable, o: ZoneOptions): Zone {
  return createZoneCompiler(o).compile(table);
}

/** Wire name back to dotted text (only for the rare PTR merge). */
function decodeName(wire: Uint8Array): string {
  const labels: string[] = [];
  for (let o = 0; wire[o]! > 0; o += wire[o]! + 1) labels.push(String.fromCharCode(...wire.subarray(o + 1, o + 1 + wire[o]!)));
  return labels.join(".");
}
