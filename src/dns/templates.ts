// Step 2 of compiling a table for DNS: wire-format answer templates keyed by lower-cased name and
// qtype. A template holds only the sections after the question; answer owners are a compression
// pointer to the question (offset 12), so one template serves every spelling and alias of a name
// and the reply echoes the client's own question bytes (and case) unchanged.
import type { RouteTable } from "../control/index.ts";
import { parseIPv4, parseIPv6 } from "./ip.ts";
import { collectRecords, type NameData } from "./records.ts";
import {
  encodeName, hashName, inZone, mixHash, sameName, type Query, RCODE_NOERROR, RCODE_NXDOMAIN,
  TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_PTR, TYPE_SOA, TYPE_SRV,
} from "./wire.ts";

export interface Template {
  readonly rcode: number;
  readonly an: number;
  readonly ns: number;
  readonly ar: number;
  readonly body: Uint8Array;
  /** ExternalName A/AAAA: the CNAME target to resolve and append (see chase.ts), else null. */
  readonly chase: { readonly name: Uint8Array; readonly hash: number } | null;
}

interface Entry {
  readonly name: Uint8Array;
  readonly qtype: number;
  readonly tpl: Template;
  next: Entry | null;
}

export interface Zone {
  readonly version: number;
  /** Lower-cased wire name of the cluster domain. */
  readonly domain: Uint8Array;
  /** mixHash(name hash, qtype) -> chain. qtype 0 = "any other type" (NODATA or CNAME). */
  readonly entries: Map<number, Entry>;
  readonly nxdomain: Template;
  readonly names: number;
  readonly skipped: readonly string[];
}

export interface ZoneOptions {
  readonly domain: string;
  readonly ttl: number;
  readonly serviceIP?: string;
}

/** Keep a body under what a TCP message can carry (65535 minus header, question, OPT). */
const MAX_BODY_BYTES = 65535 - 12 - 260 - 11;

/** Hot path: the template answering q, or null when the name is not ours (forward it). */
export function lookup(zone: Zone, q: Query): Template | null {
  let e = zone.entries.get(mixHash(q.hash, q.qtype)) ?? null;
  while (e !== null) {
    if (e.qtype === q.qtype && sameName(q, e.name)) return e.tpl;
    e = e.next;
  }
  e = zone.entries.get(mixHash(q.hash, 0)) ?? null;
  while (e !== null) {
    if (e.qtype === 0 && sameName(q, e.name)) return e.tpl;
    e = e.next;
  }
  return inZone(q, zone.domain) ? zone.nxdomain : null;
}

export function compileZone(table: RouteTable, o: ZoneOptions): Zone {
  const domain = o.domain.toLowerCase().replace(/\.$/, "");
  const { names, aliases, skipped } = collectRecords(table, { domain, serviceIP: o.serviceIP });
  const ttl = o.ttl >>> 0;
  const soa = soaRecord(domain, table.version, ttl);
  const nodata: Template = { rcode: RCODE_NOERROR, an: 0, ns: 1, ar: 0, body: soa, chase: null };
  const entries = new Map<number, Entry>();
  let count = 0;
  const putAll = (dotted: string, byType: Map<number, Template>) => {
    const name = encodeName(dotted);
    const h = hashName(name);
    for (const [qtype, tpl] of byType) {
      const key = mixHash(h, qtype);
      entries.set(key, { name, qtype, tpl, next: entries.get(key) ?? null });
      count++;
    }
  };
  const byName = new Map<string, Map<number, Template>>();
  for (const [name, data] of names) byName.set(name, templatesFor(data, names, ttl, nodata, domain));
  // Empty non-terminals (ns.svc.<domain>, _tcp.svc.ns...) exist: NODATA, not NXDOMAIN (RFC 8020).
  const suffix = `.${domain}`;
  const walked = new Set<string>([domain]);
  byName.has(domain) || byName.set(domain, new Map([[0, nodata]]));
  for (const name of names.keys()) {
    if (!name.endsWith(suffix)) continue;
    // Each ancestor is visited once: stop where an earlier walk already went.
    for (let p = name.slice(name.indexOf(".") + 1); !walked.has(p); p = p.slice(p.indexOf(".") + 1)) {
      walked.add(p);
      if (!byName.has(p)) byName.set(p, new Map([[0, nodata]]));
    }
  }
  byName.get(domain)!.set(TYPE_SOA, { rcode: RCODE_NOERROR, an: 1, ns: 0, ar: 0, body: soaRecord(domain, table.version, ttl, true), chase: null });
  for (const [name, byType] of byName) putAll(name, byType);
  for (const [alias, full] of aliases) {
    const byType = byName.get(full);
    if (byType && !byName.has(alias)) putAll(alias, byType);
  }
  const nxdomain: Template = { rcode: RCODE_NXDOMAIN, an: 0, ns: 1, ar: 0, body: soa, chase: null };
  return { version: table.version, domain: encodeName(domain), entries, nxdomain, names: count, skipped };
}

function templatesFor(
  d: NameData, names: Map<string, NameData>, ttl: number, nodata: Template, domain: string,
): Map<number, Template> {
  const out = new Map<number, Template>([[0, nodata]]);
  if (d.cname) {
    // A CNAME owner has no other data: every type gets the CNAME (clients chase it).
    const w = new Writer();
    w.rr(null, TYPE_CNAME, ttl, encodeName(d.cname));
    const tpl = w.template(1, 0);
    out.set(0, tpl);
    out.set(TYPE_CNAME, tpl);
    // Targets outside the cluster are resolved for the client; in-cluster ones it asks us again.
    if (d.cname !== domain && !d.cname.endsWith(`.${domain}`)) {
      const name = encodeName(d.cname);
      const chase = { name, hash: hashName(name) };
      out.set(TYPE_A, { ...tpl, chase });
      out.set(TYPE_AAAA, { ...tpl, chase });
    }
    return out;
  }
  const addr = (w: Writer, owner: Uint8Array | null, ips: Iterable<string>) => {
    let n = 0;
    for (const ip of ips) {
      const v4 = parseIPv4(ip);
      const bytes = v4 ?? parseIPv6(ip);
      if (bytes && w.fits(bytes.length + 12 + (owner?.length ?? 2))) {
        w.rr(owner, v4 ? TYPE_A : TYPE_AAAA, ttl, bytes);
        n++;
      }
    }
    return n;
  };
  if (d.a.size) { const w = new Writer(); out.set(TYPE_A, w.template(addr(w, null, d.a), 0)); }
  if (d.aaaa.size) { const w = new Writer(); out.set(TYPE_AAAA, w.template(addr(w, null, d.aaaa), 0)); }
  if (d.ptr.size) {
    const w = new Writer();
    for (const target of d.ptr) w.rr(null, TYPE_PTR, ttl, encodeName(target));
    out.set(TYPE_PTR, w.template(d.ptr.size, 0));
  }
  if (d.srv.length) {
    const w = new Writer();
    let an = 0;
    for (const s of d.srv) {
      const target = encodeName(s.target);
      const rdata = new Uint8Array(6 + target.length);
      rdata.set([s.priority >>> 8, s.priority & 0xff, s.weight >>> 8, s.weight & 0xff, s.port >>> 8, s.port & 0xff]);
      rdata.set(target, 6);
      if (!w.fits(rdata.length + 12)) break;
      w.rr(null, TYPE_SRV, ttl, rdata);
      an++;
    }
    // Additional section: the targets' addresses, saving clients a round trip.
    let ar = 0;
    for (const s of d.srv.slice(0, an)) {
      const t = names.get(s.target);
      if (t) ar += addr(w, encodeName(s.target), [...t.a, ...t.aaaa]);
    }
    out.set(TYPE_SRV, w.template(an, ar));
  }
  return out;
}

function soaRecord(domain: string, serial: number, ttl: number, pointerOwner = false): Uint8Array {
  const w = new Writer();
  const mname = encodeName(`ns.dns.${domain}`);
  const rname = encodeName(`hostmaster.${domain}`);
  const rdata = new Uint8Array(mname.length + rname.length + 20);
  rdata.set(mname, 0);
  rdata.set(rname, mname.length);
  const v = new DataView(rdata.buffer);
  // serial, refresh, retry, expire, minimum (minimum = negative-caching TTL, RFC 2308)
  [serial >>> 0, 7200, 1800, 86400, ttl].forEach((x, i) => v.setUint32(mname.length + rname.length + i * 4, x));
  w.rr(pointerOwner ? null : encodeName(domain), TYPE_SOA, ttl, rdata);
  return w.bytes();
}

/** Appends resource records; owner null = pointer to the question name at offset 12. */
class Writer {
  #buf = new Uint8Array(128);
  #len = 0;
  rr(owner: Uint8Array | null, type: number, ttl: number, rdata: Uint8Array): void {
    this.#reserve((owner ? owner.length : 2) + 10 + rdata.length);
    const b = this.#buf;
    let o = this.#len;
    if (owner) {
      b.set(owner, o);
      o += owner.length;
    } else {
      b[o++] = 0xc0;
      b[o++] = 0x0c;
    }
    b[o++] = type >>> 8;
    b[o++] = type & 0xff;
    b[o++] = 0;
    b[o++] = 1;
    b[o++] = ttl >>> 24;
    b[o++] = (ttl >>> 16) & 0xff;
    b[o++] = (ttl >>> 8) & 0xff;
    b[o++] = ttl & 0xff;
    b[o++] = rdata.length >>> 8;
    b[o++] = rdata.length & 0xff;
    b.set(rdata, o);
    this.#len = o + rdata.length;
  }
  fits(extra: number): boolean {
    return this.#len + extra <= MAX_BODY_BYTES;
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
  template(an: number, ar: number): Template {
    return { rcode: RCODE_NOERROR, an, ns: 0, ar, body: this.bytes(), chase: null };
  }
  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}
