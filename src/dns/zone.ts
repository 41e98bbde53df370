// Step 3: a whole table into a Zone, the lookup structure the hot path reads. The compiler keeps
// each service's prepared names while its fingerprint is unchanged, and builds the next zone's
// entry map from the previous one: a copy (the previous zone stays untouched), minus the names of
// removed or changed services, plus those of added or changed ones. A publish that changes a few
// services at 10k costs a Map copy and a fingerprint per service, not a rebuild.
import type { RouteTable } from "../control/index.ts";
import {
  type Entries, memoService, nodataOnly, type Prepared, prepare, preparePtr, putEntry, removeEntry, type ServiceMemo,
} from "./prepared.ts";
import { fingerprint } from "./records.ts";
import { negativeTemplates, type Zone } from "./templates.ts";
import { encodeName, TYPE_SOA } from "./wire.ts";

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

export function createZoneCompiler(o: ZoneOptions): ZoneCompiler {
  const domain = o.domain.toLowerCase().replace(/\.$/, "");
  const opts = { domain, ttl: o.ttl >>> 0, serviceIP: o.serviceIP };
  const domainWire = encodeName(domain);
  // State of the last compiled zone. Shared names are reference-counted by owner.
  let memo = new Map<string, ServiceMemo>();
  let entries: Entries = new Map();
  const shortOwners = new Map<string, Set<ServiceMemo>>();
  const shortPut = new Map<string, Prepared>();
  const nsOwners = new Map<string, number>();
  const nsPut = new Map<string, Prepared>();
  const ptrOwners = new Map<string, Map<ServiceMemo, readonly string[]>>();
  const ptrPut = new Map<string, Prepared>();
  let apex: Prepared | null = null;
  let count = 0;
  // One service DNS cannot carry (a 300-byte ExternalName...) must not stop every other update.
  const tryMemo = (svc: RouteTable["services"][number]): ServiceMemo | null => {
    try {
      return memoService(svc, opts);
    } catch {
      return null;
    }
  };

  return {
    compile(table) {
      const next = new Map<string, ServiceMemo>();
      const removed: ServiceMemo[] = [];
      const added: ServiceMemo[] = [];
      const skipped: string[] = [];
      for (const svc of table.services) {
        const key = `${svc.namespace}/${svc.name}`;
        const old = memo.get(key);
        const m = old !== undefined && old.fp === fingerprint(svc) ? old : tryMemo(svc);
        if (m === null) {
          skipped.push(key);
          continue;
        }
        next.set(key, m);
        if (m !== old) added.push(m);
        if (old !== undefined && m !== old) removed.push(old);
      }
      for (const [key, old] of memo) if (!next.has(key)) removed.push(old);
      memo = next;

      const e: Entries = new Map(entries); // the previous zone keeps its own map
      const shorts = new Set<string>();
      const namespaces = new Set<string>();
      const revs = new Set<string>();
      const own = (m: ServiceMemo, on: boolean) => {
        for (const p of m.own) on ? putEntry(e, p) : removeEntry(e, p);
        count += on ? m.own.length : -m.own.length;
        const owners = shortOwners.get(m.name) ?? new Set();
        on ? owners.add(m) : owners.delete(m);
        shortOwners.set(m.name, owners);
        shorts.add(m.name);
        nsOwners.set(m.namespace, (nsOwners.get(m.namespace) ?? 0) + (on ? 1 : -1));
        namespaces.add(m.namespace);
        for (const [rev, targets] of m.ptrs) {
          const by = ptrOwners.get(rev) ?? new Map();
          on ? by.set(m, targets) : by.delete(m);
          ptrOwners.set(rev, by);
          revs.add(rev);
        }
      };
      for (const m of removed) own(m, false);
      for (const m of added) own(m, true);
      // Shared names: recomputed only where an owner came or went.
      const swap = (put: Map<string, Prepared>, key: string, p: Prepared | null) => {
        const was = put.get(key);
        if (was) {
          removeEntry(e, was);
          put.delete(key);
          count--;
        }
        if (p) {
          putEntry(e, p);
          put.set(key, p);
          count++;
        }
      };
      for (const name of shorts) {
        // A single label is answered only when exactly one namespace has a service of that name.
        const owners = shortOwners.get(name)!;
        const only = owners.size === 1 ? [...owners][0]!.short : null;
        if (owners.size === 0) shortOwners.delete(name);
        if (shortPut.get(name) !== only) swap(shortPut, name, only);
      }
      for (const ns of namespaces) {
        const n = nsOwners.get(ns)!;
        if (n === 0) nsOwners.delete(ns);
        if (n === 0 || !nsPut.has(ns)) swap(nsPut, ns, n === 0 ? null : nodataOnly(`${ns}.svc.${domain}`));
      }
      for (const rev of revs) {
        const by = ptrOwners.get(rev)!;
        if (by.size === 0) ptrOwners.delete(rev);
        const targets = new Set([...by.values()].flat());
        swap(ptrPut, rev, targets.size === 0 ? null : preparePtr(rev, targets, opts.ttl, domain));
      }
      if (apex === null) {
        putEntry(e, nodataOnly(`svc.${domain}`));
        count++;
      } else {
        removeEntry(e, apex);
        count--;
      }
      const neg = negativeTemplates(domain, table.version, opts.ttl);
      apex = prepare(domain, new Map([[0, neg.nodata], [TYPE_SOA, neg.apexSoa]]));
      putEntry(e, apex);
      count++;
      entries = e;
      return {
        version: table.version, domain: domainWire, entries: e, nodata: neg.nodata, nxdomain: neg.nxdomain, names: count,
        skipped, ttl: opts.ttl, domainLabels: domain.split(".").length,
      };
    },
  };
}

/** One-shot compile (tests, tools); the server keeps a compiler to reuse unchanged services. */
export function compileZone(table: RouteTable, o: ZoneOptions): Zone {
  return createZoneCompiler(o).compile(table);
}
