// The per-query decision, shared by UDP and TCP: validate, answer from the zone templates, from
// the cache, or hand to the forwarder. Socket-free so tests can drive it with plain buffers.
import type { Logger } from "../log/index.ts";
import type { Counter, MetricsRegistry } from "../metrics/index.ts";
import { podIPv4, writeAddressReply, writeRcodeReply, writeTemplateReply } from "./answer.ts";
import { DnsCache, writeCachedReply } from "./cache.ts";
import { Forwarder, type Waiter } from "./forward.ts";
import { DnsStats, RCODE_BADVERS, SOURCE_CACHE, SOURCE_LOCAL, SOURCE_UPSTREAM } from "./stats.ts";
import { writeChasedReply } from "./chase.ts";
import { lookup, type Template, type Zone } from "./templates.ts";
import type { Upstream, UpstreamIO } from "./upstream.ts";
import {
  CLASS_IN, mixHash, TYPE_A, PARSE_BADVERS, PARSE_DROP, PARSE_OK, parseQuery, Query, RCODE_NOTIMP, RCODE_REFUSED,
  writeErrorReply,
} from "./wire.ts";

/** Largest DNS message over TCP (2-byte length prefix). */
export const TCP_LIMIT = 65535;

export interface CoreOptions {
  zone: Zone;
  upstreams: readonly Upstream[];
  /** cacheDNS mode: every question goes here (forwarded + cached), none is answered locally. */
  clusterUpstreams: readonly Upstream[] | null;
  cacheSize: number;
  io: UpstreamIO;
  metrics: MetricsRegistry;
  log: Logger;
  now: () => number;
  deliver: (w: Waiter, buf: Uint8Array, len: number) => void;
  timeoutMs: number;
  maxPending: number;
  maxCacheTtlS: number;
}

export function dnsCounters(m: MetricsRegistry) {
  const reply = (kind: string) => m.counter("dns_replies_total", "DNS replies by source", { kind });
  const bad = (action: string) => m.counter("dns_malformed_total", "Malformed DNS queries", { action });
  const fwd = (event: string) => m.counter("dns_forward_total", "DNS forwarder events", { event });
  return {
    local: reply("local"),
    cacheHit: reply("cache"),
    refused: reply("refused"),
    truncated: reply("truncated"),
    formerr: bad("formerr"),
    notimp: bad("notimp"),
    dropped: bad("dropped"),
    badvers: bad("badvers"),
    errors: m.counter("dns_handler_errors_total", "Exceptions caught in DNS socket handlers"),
    tcpRejected: m.counter("dns_tcp_rejected_total", "TCP connections closed at once: too many open"),
    sendErrors: m.counter("dns_socket_errors_total", "Socket errors reported on DNS sockets (ICMP, resets)"),
    cacheMiss: fwd("cache_miss"),
    forwarded: fwd("upstream_query"),
    coalesced: fwd("coalesced"),
    timeouts: fwd("timeout"),
    servfail: fwd("servfail"),
    overloaded: fwd("overloaded"),
    noUpstream: fwd("no_upstream"),
    stray: fwd("stray_reply"),
    zoneErrors: m.counter("dns_zone_errors_total", "Tables that could not be compiled for DNS"),
  } satisfies Record<string, Counter>;
}

export type DnsCounters = ReturnType<typeof dnsCounters>;

export class DnsCore {
  zone: Zone;
  readonly q = new Query();
  /** The CNAME target's question when an ExternalName answer is chased. */
  readonly #cq = new Query();
  readonly cache: DnsCache;
  readonly forwarder: Forwarder;
  readonly c: DnsCounters;
  readonly stats: DnsStats;
  /** Where the answer handle() is producing comes from (SOURCE_*). */
  #source = SOURCE_LOCAL;
  /** An rcode the header cannot carry (BADVERS), else -1: read the reply's header. */
  #rcode = -1;
  readonly #upstreams: readonly Upstream[];
  /** cacheDNS mode: where every question goes (null = cluster names answered locally). */
  cluster: readonly Upstream[] | null;
  readonly #now: () => number;

  constructor(o: CoreOptions) {
    this.zone = o.zone;
    this.c = dnsCounters(o.metrics);
    const stats = (this.stats = new DnsStats(o.metrics));
    const deliver = o.deliver;
    this.cache = new DnsCache(o.cacheSize);
    this.#upstreams = o.upstreams;
    this.cluster = o.clusterUpstreams;
    this.#now = o.now;
    this.forwarder = new Forwarder({
      cache: this.cache, io: o.io, log: o.log, now: o.now, timeoutMs: o.timeoutMs,
      maxPending: o.maxPending, maxCacheTtlS: o.maxCacheTtlS, counters: this.c,
      deliver: (w, buf, len) => {
        // The qtype is the question's last-but-one field: head ends with QTYPE, QCLASS.
        stats.respond((w.head[w.qEnd - 4]! << 8) | w.head[w.qEnd - 3]!, buf[3]! & 0x0f, SOURCE_UPSTREAM, w.startedMs);
        deliver(w, buf, len);
      },
    });
    o.metrics.gaugeFn("dns_cache_entries", "Entries in the DNS forward cache", () => this.cache.size);
    o.metrics.gaugeFn("dns_forward_pending", "Questions waiting on an upstream", () => this.forwarder.pending);
  }

  /**
   * Answer the query in buf[0, len) into `out`. Returns the reply length, or 0 when there is
   * nothing to send now (dropped, or forwarded: the reply comes later through `deliver`).
   * `conn` (TCP) or `port`/`address` (UDP) are only kept when forwarding.
   */
  handle(buf: Uint8Array, len: number, out: Uint8Array, conn: object | null, port: number, address: string): number {
    const started = performance.now();
    (conn === null ? this.stats.udp : this.stats.tcp).value++;
    this.#source = SOURCE_LOCAL;
    this.#rcode = -1;
    this.q.qtype = 0; // a query that does not parse counts as qtype "other"
    const n = this.#answer(buf, len, out, conn, port, address, started);
    if (n > 0) this.stats.respond(this.q.qtype, this.#rcode >= 0 ? this.#rcode : out[3]! & 0x0f, this.#source, started);
    return n;
  }

  #answer(buf: Uint8Array, len: number, out: Uint8Array, conn: object | null, port: number, address: string, started: number): number {
    const c = this.c;
    const q = this.q;
    const st = parseQuery(buf, len, q);
    if (st !== PARSE_OK) {
      if (st === PARSE_DROP) {
        c.dropped.value++;
        return 0;
      }
      if (st === PARSE_BADVERS) {
        c.badvers.value++;
        this.#rcode = RCODE_BADVERS;
        const n = writeRcodeReply(buf, q.questionEnd, true, 0, out);
        out[q.questionEnd + 5] = 1; // extended RCODE 16 = BADVERS: upper 8 bits live in the OPT TTL
        return n;
      }
      (st === RCODE_NOTIMP ? c.notimp : c.formerr).value++;
      return writeErrorReply(buf, st, out);
    }
    const tcp = conn !== null;
    const limit = tcp ? TCP_LIMIT : q.udpSize;
    // Other classes (CHAOS version.bind...) and zone transfers (IXFR 251, AXFR 252) are not served.
    if (q.qclass !== CLASS_IN || q.qtype === 251 || q.qtype === 252) {
      c.refused.value++;
      return writeRcodeReply(buf, q.questionEnd, q.hasOpt, RCODE_REFUSED, out);
    }
    let group = this.#upstreams;
    // cacheDNS (EdgeMesh's NodeLocal DNSCache mode): like its Corefile, one "forward ." to the
    // cluster DNS for every name, with the kubernetes plugin off.
    if (this.cluster === null) {
      const t = lookup(this.zone, q);
      if (t !== null) {
        c.local.value++;
        if (t.chase !== null) return this.#chase(t, buf, out, limit, conn, port, address, started);
        if (t === this.zone.nxdomain) {
          // "pods insecure" as in EdgeMesh's Corefile: 10-1-2-3.<ns>.pod.<domain> is 10.1.2.3.
          const ip = podIPv4(q, this.zone.domainLabels);
          if (ip >= 0) {
            if (q.qtype !== TYPE_A) return writeTemplateReply(this.zone.nodata, buf, q, out, limit, c.truncated);
            return writeAddressReply(buf, q, ip, this.zone.ttl, out);
          }
        }
        return writeTemplateReply(t, buf, q, out, limit, c.truncated);
      }
    } else {
      group = this.cluster;
    }
    const key = mixHash(mixHash(q.hash, q.qtype), q.qclass);
    const now = this.#now();
    const e = this.cache.get(q, key, now);
    if (e !== null) {
      c.cacheHit.value++;
      this.#source = SOURCE_CACHE;
      return writeCachedReply(e, buf, q.questionEnd, q.hasOpt, limit, now, out, c.truncated);
    }
    c.cacheMiss.value++;
    const w: Waiter = {
      head: buf.slice(0, q.questionEnd), qEnd: q.questionEnd, hasOpt: q.hasOpt, limit, conn, port, address, chase: null, startedMs: started,
    };
    this.forwarder.forward(q, key, group, w, tcp);
    return 0;
  }

  /** ExternalName A/AAAA: CNAME plus the target's records, from the cache or the forwarder. */
  #chase(
    t: Template, buf: Uint8Array, out: Uint8Array, limit: number, conn: object | null, port: number, address: string, started: number,
  ): number {
    const q = this.q;
    const cq = this.#cq;
    const target = t.chase!;
    cq.name.set(target.name);
    cq.nameLen = target.name.length;
    cq.hash = target.hash;
    cq.qtype = q.qtype;
    cq.qclass = q.qclass;
    const key = mixHash(mixHash(cq.hash, cq.qtype), cq.qclass);
    const now = this.#now();
    const e = this.cache.get(cq, key, now);
    if (e !== null) {
      this.c.cacheHit.value++;
      this.#source = SOURCE_CACHE;
      return writeChasedReply(t, e, buf, q.questionEnd, q.hasOpt, limit, now, out, this.c.truncated);
    }
    this.c.cacheMiss.value++;
    const w: Waiter = {
      head: buf.slice(0, q.questionEnd), qEnd: q.questionEnd, hasOpt: q.hasOpt, limit, conn, port, address, chase: t, startedMs: started,
    };
    this.forwarder.forward(cq, key, this.#upstreams, w, conn !== null);
    return 0;
  }
}
