// Step 2 of compiling a table for DNS: wire-format answer templates for one name, by qtype, and
// the hot-path lookup over the zone's entries (zone.ts builds them). A template holds only the
// sections after the question; answer owners are a compression pointer to the question (offset
// 12), so one template serves every spelling and alias of a name and the reply echoes the
// client's own question bytes (and case) unchanged.
import { parseIPv4, parseIPv6 } from "./ip.ts";
import type { NameData } from "./records.ts";
import {
  encodeName, hashName, inZone, sameName, type Query, RCODE_NOERROR, RCODE_NXDOMAIN,
  TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_PTR, TYPE_SOA, TYPE_SRV,
} from "./wire.ts";

export interface Template {
  readonly rcode: number;
  readonly an: number;
  readonly ns: number;
  readonly ar: number;
  readonly body: Uint8Array;
  /**
   * Body offset where each answer record ends. When the whole reply does not fit a UDP client,
   * the reply carries as many whole answers as fit, with TC set: clients that cannot retry over
   * TCP (older musl, as in Alpine images) still get addresses, as with CoreDNS.
   */
  readonly answerEnds: Uint16Array;
  /** ExternalName A/AAAA: the CNAME target to resolve and append (see chase.ts), else null. */
  readonly chase: { readonly name: Uint8Array; readonly hash: number } | null;
}

/** One name's templates. Built once per name and reused by every zone while it is unchanged. */
export interface NameEntry {
  /** Lower-cased wire name. */
  readonly name: Uint8Array;
  readonly qtypes: readonly number[];
  readonly tpls: readonly Template[];
  /** Every other qtype: NODATA_MARK (the zone's NODATA) or, for ExternalName, the CNAME. */
  readonly other: Template;
}

export interface Zone {
  readonly version: number;
  /** Lower-cased wire name of the cluster domain. */
  readonly domain: Uint8Array;
  /** Name hash -> entry; an array only where two names share a hash. */
  readonly entries: Map<number, NameEntry | NameEntry[]>;
  readonly nodata: Template;
  readonly nxdomain: Template;
  readonly names: number;
  readonly skipped: readonly string[];
  /** TTL of our records, seconds (pod answers are made per query). */
  readonly ttl: number;
  /** Labels in the cluster domain: pod names are <a-b-c-d>.<ns>.pod.<domain>. */
  readonly domainLabels: number;
}

const NO_ENDS = new Uint16Array(0);

/** Keep a body under what a TCP message can carry (65535 minus header, question, OPT). */
const MAX_BODY_BYTES = 65535 - 12 - 260 - 11;

/** Hot path: the template answering q, or null when the name is not ours (forward it). */
export function lookup(zone: Zone, q: Query): Template | null {
  const v = zone.entries.get(q.hash);
  let e: NameEntry | null = null;
  if (v === undefined) {
    // not ours, or a name in the zone that does not exist
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (sameName(q, v[i]!.name)) e = v[i]!;
  } else if (sameName(q, v.name)) {
    e = v;
  }
  if (e === null) return inZone(q, zone.domain) ? zone.nxdomain : null;
  let t = e.other;
  const types = e.qtypes;
  for (let i = 0; i < types.length; i++) {
    if (types[i] === q.qtype) {
      t = e.tpls[i]!;
      break;
    }
  }
  return t === NODATA_MARK ? zone.nodata : t;
}

/**
 * Stands for "NODATA with this zone's SOA" inside per-service template maps, which outlive one
 * table version; the zone compiler swaps in the current NODATA template when it builds entries.
 */
export const NODATA_MARK: Template = {
  rcode: RCODE_NOERROR, an: 0, ns: 1, ar: 0, body: new Uint8Array(0), answerEnds: new Uint16Array(0), chase: null,
};

export function negativeTemplates(domain: string, serial: number, ttl: number) {
  const soa = soaRecord(domain, serial, ttl);
  return {
    nodata: { rcode: RCODE_NOERROR, an: 0, ns: 1, ar: 0, body: soa, answerEnds: NO_ENDS, chase: null } as Template,
    nxdomain: { rcode: RCODE_NXDOMAIN, an: 0, ns: 1, ar: 0, body: soa, answerEnds: NO_ENDS, chase: null } as Template,
    apexSoa: { rcode: RCODE_NOERROR, an: 1, ns: 0, ar: 0, body: soaRecord(domain, serial, ttl, true), answerEnds: NO_ENDS, chase: null } as Template,
  };
}

/** Templates by qtype for one name; qtype 0 = every other type (NODATA_MARK, or the CNAME). */
export function templatesFor(d: NameData, names: Map<string, NameData>, ttl: number, domain: string): Map<number, Template> {
  const out = new Map<number, Template>([[0, NODATA_MARK]]);
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
  readonly #ends: number[] = [];
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
    this.#ends.push(this.#len);
  }
  fits(extra: number): boolean {
    return this.#len + extra <= MAX_BODY_BYTES;
  }
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
  template(an: number, ar: number): Template {
    return { rcode: RCODE_NOERROR, an, ns: 0, ar, body: this.bytes(), answerEnds: Uint16Array.from(this.#ends.slice(0, an)), chase: null };
  }
  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}
