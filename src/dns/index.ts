// Node-local DNS: cluster names answered from templates precomputed per published RouteTable,
// everything else forwarded to the node's upstream resolvers with a cache.
//
// Names answered directly (all case-insensitive, the question's case echoed):
//   <svc>.<ns>.svc.<domain>   authoritative; unknown names below <domain> get NXDOMAIN + SOA,
//                             existing names (and empty non-terminals) with another type NODATA + SOA
//   <svc>.<ns>.svc, <svc>.<ns> the same records; these are outside the zone, so a miss is forwarded
//   <svc>                     only when exactly one namespace has a service of that name
//   _<port>._<proto>.<svc>.<ns>.svc.<domain>  SRV for named ports
//   <host>.<svc>.<ns>.svc.<domain>  headless endpoints (hostname, else the IP with dashes)
//   PTR under in-addr.arpa / ip6.arpa for ClusterIPs and headless endpoint IPs (misses forwarded)
//   <a-b-c-d>.<ns>.pod.<domain>  A a.b.c.d ("pods insecure", as EdgeMesh's Corefile; IPv4 only)
//   ExternalName: CNAME; A/AAAA questions also get the target's records, resolved through the
//   forwarder and cache (stub resolvers do not chase a bare CNAME), unless the target is in-zone
// UDP answers bigger than the client's EDNS size (512 without EDNS) carry the records that fit
// with TC set; clients retry over TCP. Everything else goes to the upstreams (see forward.ts).
// Pods with the usual search path (<ns>.svc.<domain> svc.<domain> <domain>, ndots 5) expand short
// names into the full name themselves; the short forms are for clients without a search path
// (the node itself, dev mode on a laptop).
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { TableSource } from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import { CONTROL_BUCKETS_SECONDS, type MetricsRegistry } from "../metrics/index.ts";
import { DnsCore } from "./core.ts";
import { parseUpstream, upstreamsFromResolvConf } from "./resolvconf.ts";
import { DnsSockets } from "./server.ts";
import type { Zone } from "./templates.ts";
import { type Upstream, UpstreamIO } from "./upstream.ts";
import { createZoneCompiler } from "./zone.ts";

export { lookup, type Template, type Zone } from "./templates.ts";
export { compileZone, createZoneCompiler, type ZoneCompiler, type ZoneOptions } from "./zone.ts";
export { parseResolvConf, parseUpstream, upstreamsFromResolvConf } from "./resolvconf.ts";
export type { Upstream } from "./upstream.ts";

export interface DnsOptions {
  table: TableSource;
  /** port 0 = pick one (UDP and TCP get the same port). */
  listen: { host: string; port: number };
  tcp: boolean;
  /** "cluster.local" */
  clusterDomain: string;
  /** Seconds, for every record we answer and the SOA minimum (EdgeMesh: 30). */
  ttl: number;
  /** "ip:port" or "ip"; empty = nameservers of /etc/resolv.conf minus our own listen address. */
  upstreams: string[];
  /** Entries in the forward cache. */
  cacheSize: number;
  /**
   * EdgeMesh's NodeLocal-DNSCache mode: every question, cluster names included, is forwarded to
   * the cluster DNS and cached; nothing is answered locally (EdgeMesh's Corefile then has one
   * "forward ." and no kubernetes plugin). Servers: with autoDetect the ClusterIPs of
   * kube-system/coredns and kube-system/kube-dns from the table, then upstreamServers. cacheTTL
   * caps every cached TTL, seconds. With no server found, cluster names are answered locally.
   */
  cacheDNS?: { enable: boolean; upstreamServers: string[]; autoDetect?: boolean; cacheTTL?: number };
  /** Dev mode: A/AAAA of ClusterIP-like services is this IP (the proxy's listen host). */
  serviceIP?: string;
  metrics: MetricsRegistry;
  log: Logger;
  clock?: { now(): number };
  /** Per-attempt upstream timeout (default 2000 ms); each question tries max(2, upstreams) times. */
  forwardTimeoutMs?: number;
  /** Distinct questions waiting on upstreams at once (default 4096); more get SERVFAIL. */
  maxPending?: number;
  /** Open TCP connections at once (default 1000); more are closed at once and counted. */
  maxTcpConnections?: number;
  /**
   * Longest time a forwarded answer is cached, seconds (default 30: EdgeMesh's Corefile has
   * "cache 30"). In cacheDNS mode cacheDNS.cacheTTL is used instead.
   */
  maxCacheTtl?: number;
  /** OS boundary: reads /etc/resolv.conf. */
  readResolvConf?: () => string;
}

/** EdgeMesh's Corefile: "cache 30". */
const DEFAULT_MAX_CACHE_TTL_S = 30;

export interface DnsServer {
  start(): Promise<{ host: string; udpPort: number; tcpPort: number }>;
  stop(): void;
  /** The zone compiled from the current table (for /routes-like introspection and tests). */
  zone(): Zone;
}

export function createDnsServer(o: DnsOptions): DnsServer {
  // An empty domain would make every name "ours": nothing would ever be forwarded.
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$/.test(o.clusterDomain)) {
    throw new Error(`DNS clusterDomain "${o.clusterDomain}" is not a domain name (like cluster.local)`);
  }
  const log = o.log.child("dns");
  const now = o.clock ? () => o.clock!.now() : Date.now;
  const compiler = createZoneCompiler({ domain: o.clusterDomain, ttl: o.ttl, serviceIP: o.serviceIP });
  let core: DnsCore | null = null;
  let sockets: DnsSockets | null = null;
  let io: UpstreamIO | null = null;
  let unsubscribe: (() => void) | null = null;
  let zone = compiler.compile(o.table.current());
  const zoneErrors = o.metrics.counter("dns_zone_errors_total", "Tables that could not be compiled for DNS");
  const compileSeconds = o.metrics.histogram("dns_zone_compile_duration_seconds", "Time to compile a route table into the DNS zone", CONTROL_BUCKETS_SECONDS);
  o.metrics.gaugeFn("dns_zone_names", "Names in the DNS zone (with aliases and PTR names)", () => zone.names);

  /** Auto-detected ClusterIPs already warned about. */
  const badClusterIPs = new Set<string>();
  /** cacheDNS mode: the cluster DNS servers every question goes to; null = answer cluster names. */
  const clusterUpstreams = (): Upstream[] | null => {
    const c = o.cacheDNS;
    if (!c?.enable) return null;
    // As EdgeMesh: the coredns and kube-dns services' ClusterIPs, then the configured servers.
    const found: string[] = [];
    if (c.autoDetect) {
      for (const s of o.table.current().services) {
        if (s.namespace !== "kube-system" || (s.name !== "coredns" && s.name !== "kube-dns")) continue;
        const ip = s.clusterIPs.find((x) => x && x !== "None");
        if (!ip) continue;
        // The API is not ours to trust: an address that does not parse is skipped (it used to
        // throw here, and DNS did not start).
        if (isIP(ip) === 0) {
          if (!badClusterIPs.has(ip)) log.warn("cacheDNS: skipping a cluster DNS service whose ClusterIP is no IP address", { service: `${s.namespace}/${s.name}`, clusterIP: ip });
          badClusterIPs.add(ip);
          continue;
        }
        found.push(ip);
      }
    }
    const all = [...new Set([...found, ...c.upstreamServers.map((x) => x.trim()).filter(Boolean)])];
    return all.length > 0 ? all.map(parseUpstream) : null;
  };

  const rebuild = () => {
    try {
      const table = o.table.current();
      if (table.version !== zone.version) {
        const t0 = performance.now();
        zone = compiler.compile(table);
        compileSeconds.observe((performance.now() - t0) / 1000);
        if (zone.skipped.length) log.warn("services without DNS names", { skipped: zone.skipped.join(",") });
      }
      if (core) {
        core.zone = zone;
        core.cluster = clusterUpstreams();
      }
    } catch (err) {
      zoneErrors.value++;
      log.error("compiling DNS zone failed; keeping the previous one", { err });
    }
  };

  return {
    async start() {
      const readConf = o.readResolvConf ?? (() => readFileSync("/etc/resolv.conf", "utf8"));
      let upstreams: Upstream[] = [];
      if (o.upstreams.length > 0) upstreams = o.upstreams.map(parseUpstream);
      else {
        try {
          upstreams = upstreamsFromResolvConf(readConf(), o.listen);
        } catch (err) {
          log.warn("cannot read resolv.conf for DNS upstreams", { err });
        }
      }
      const cluster = clusterUpstreams();
      if (o.cacheDNS?.enable && cluster === null) log.warn("cacheDNS: no cluster DNS found; answering cluster names locally");
      if (cluster) log.info("cacheDNS: forwarding every question", { servers: cluster.map((u) => `${u.host}:${u.port}`).join(",") });
      if (upstreams.length === 0) log.warn("no DNS upstreams: names outside the cluster get SERVFAIL");
      io = new UpstreamIO({
        stray: o.metrics.counter("dns_forward_total", "DNS forwarder events", { event: "stray_reply" }),
        errors: o.metrics.counter("dns_socket_errors_total", "Socket errors reported on DNS sockets (ICMP, resets)"),
      });
      await io.start();
      const s: { sockets: DnsSockets | null } = { sockets: null };
      core = new DnsCore({
        zone, upstreams, clusterUpstreams: cluster, cacheSize: o.cacheSize, io, metrics: o.metrics, log, now,
        deliver: (w, buf, len) => s.sockets?.deliver(w, buf, len),
        timeoutMs: o.forwardTimeoutMs ?? 2000, maxPending: o.maxPending ?? 4096,
        maxCacheTtlS: o.cacheDNS?.enable && o.cacheDNS.cacheTTL ? o.cacheDNS.cacheTTL : (o.maxCacheTtl ?? DEFAULT_MAX_CACHE_TTL_S),
      });
      sockets = s.sockets = new DnsSockets(core, o.maxTcpConnections);
      unsubscribe = o.table.subscribe(rebuild);
      rebuild();
      const ports = await sockets.start(o.listen.host, o.listen.port, o.tcp);
      const names = upstreams.map((u) => `${u.host}:${u.port}`).join(",");
      log.info("DNS listening", { host: o.listen.host, ...ports, upstreams: names });
      return { host: o.listen.host, ...ports };
    },
    stop() {
      unsubscribe?.();
      unsubscribe = null;
      sockets?.stop();
      core?.forwarder.stop();
      io?.stop();
      sockets = null;
      io = null;
    },
    zone: () => zone,
  };
}
