// Step 3: a whole table into a Zone, the lookup structure the hot path reads. A table publish
// rebuilds the Zone, but each service's names and templates are kept between compiles and reused
// while the service's DNS-relevant fields (its fingerprint) are unchanged, so a publish costs
// roughly one Map insert per (name, qtype) instead of re-encoding 10k services.
import type { RouteTable } from "../control/index.ts";
import { fingerprint, serviceNames } from "./records.ts";
import { type Entry, negativeTemplates, NODATA_MARK, type Template, templatesFor, type Zone } from "./templates.ts";
import { encodeName, hashName, mixHash, TYPE_SOA } from "./wire.ts";

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

/** A name encoded once, with its templates by qtype and their entry keys precomputed. */
interface Prepared {
  readonly wire: Uint8Array;
  readonly byType: Map<number, Template>;
  readonly keys: number[];
  readonly qtypes: number[];
  readonly tpls: Template[];
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
  readonly ptrs: [string, string][];
}

function prepare(dotted: string, byType: Map<number, Template>): Prepared {
  const wire = encodeName(dotted);
  const hash = hashName(wire);
  const p: Prepared = { wire, byType, keys: [], qtypes: [], tpls: [] };
  for (const [qtype, tpl] of byType) {
    p.keys.push(mixHash(hash, qtype));
    p.qtypes.push(qtype);
    p.tpls.push(tpl);
  }
  return p;
}

export function createZoneCompiler(o: ZoneOptions): ZoneCompiler {
  const domain = o.domain.toLowerCase().replace(/\.$/, "");
  const ttl = o.ttl >>> 0;
  const domainWire = encodeName(domain);
  let memo = new Map<string, ServiceMemo>();
  let ptrMemo = new Map<string, Prepared>();

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
    return { fp, name: s.name, namespace: s.namespace, prepared, full, short: prepare(s.name, full), ptrs: s.ptrs };
  };

  return {
    compile(table) {
      const neg = negativeTemplates(domain, table.version, ttl);
      const entries = new Map<number, Entry>();
      let count = 0;
      const put = (p: Prepared) => {
        for (let i = 0; i < p.keys.length; i++) {
          const key = p.keys[i]!;
          const t = p.tpls[i]!;
          entries.set(key, { name: p.wire, qtype: p.qtypes[i]!, tpl: t === NODATA_MARK ? neg.nodata : t, next: entries.get(key) ?? null });
        }
        count += p.keys.length;
      };
      const next = new Map<string, ServiceMemo>();
      const skipped: string[] = [];
      const namespaces = new Set<string>();
      const byShortName = new Map<string, ServiceMemo | null>();
      const ptrTargets = new Map<string, Set<string>>();
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
        for (const [rev, target] of m.ptrs) {
          let set = ptrTargets.get(rev);
          if (!set) ptrTargets.set(rev, (set = new Set()));
          set.add(target);
        }
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
      const nextPtr = new Map<string, Prepared>();
      for (const [rev, targets] of ptrTargets) {
        const k = `${rev}|${[...targets].join(",")}`;
        const p = ptrMemo.get(k) ?? prepare(rev, ptrTemplates(targets));
        nextPtr.set(k, p);
        put(p);
      }
      ptrMemo = nextPtr;
      for (const ns of namespaces) put(prepare(`${ns}.svc.${domain}`, new Map([[0, NODATA_MARK]])));
      put(prepare(`svc.${domain}`, new Map([[0, NODATA_MARK]])));
      put(prepare(domain, new Map([[0, NODATA_MARK], [TYPE_SOA, neg.apexSoa]])));
      return { version: table.version, domain: domainWire, entries, nxdomain: neg.nxdomain, names: count, skipped };
    },
  };

  function ptrTemplates(targets: Set<string>): Map<number, Template> {
    return templatesFor({ a: new Set(), aaaa: new Set(), srv: [], ptr: targets, cname: "" }, new Map(), ttl, domain);
  }
}

/** One-shot compile (tests, tools); the server keeps a compiler to reuse unchanged services. */
export function compileZone(table: RouteTable, o: ZoneOptions): Zone {
  return createZoneCompiler(o).compile(table);
}
