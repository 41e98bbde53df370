// compileGateway(): Gateways, VirtualServices, TLS Secrets and Services from the store plus the
// selected NIC addresses in, one deeply frozen GatewayTable out. Pure: no I/O, time and version
// are arguments, problems go to warn() and never throw.
//
// Binding, as Istio does it: a VirtualService applies to the Gateways named in spec.gateways
// ("name" in the VirtualService's namespace, "namespace/name"); on each server of such a Gateway
// it serves the VirtualService hosts that the server's hosts cover. EdgeMesh compared names
// only (any namespace) and required identical host lists; a short name that exists only in
// another namespace still binds here, with a warning, so EdgeMesh setups keep working.
// One port has one mode: the first server (Gateways in namespace/name order) decides it and
// servers of another mode on that port are ignored with a warning.

import type { KubeObject } from "../objects.ts";
import type { StoreSnapshot } from "../store.ts";
import { deepFreeze } from "../table.ts";
import type { ServiceIndex } from "./destinations.ts";
import { HostIndexBuilder, hostCovers, narrower } from "./hosts.ts";
import { parseTlsSecret } from "./secret.ts";
import { compileServers, type CompiledServer } from "./servers.ts";
import type { GatewayListener, GatewayPort, GatewayTable, HttpRoute, StreamRoute, TlsServerConfig, VirtualHost } from "./types.ts";
import { compileVirtualService, type CompiledVirtualService } from "./virtualservice.ts";

export interface GatewayCompileOptions {
  /** For destination hosts written as name.namespace.svc.<domain>. */
  clusterDomain: string;
  warn?: (msg: string) => void;
}

export const EMPTY_GATEWAY_TABLE: GatewayTable = deepFreeze({
  version: 0,
  compiledAt: 0,
  addresses: [],
  ports: [],
  byPort: Object.create(null) as Record<string, GatewayPort>,
  listeners: [],
  routeIds: [],
});

interface VhostBuilder {
  hosts: string[];
  routes: HttpRoute[];
}

interface PortBuilder {
  port: number;
  mode: GatewayPort["mode"];
  servers: CompiledServer[];
  http: HostIndexBuilder<VhostBuilder>;
  certs: HostIndexBuilder<TlsServerConfig>;
  sni: HostIndexBuilder<StreamRoute>;
  tcp: StreamRoute | null;
  requestClientCert: boolean;
}

const noWarn = (_m: string): void => {};

function sortedObjects(map: ReadonlyMap<string, KubeObject>): KubeObject[] {
  const key = (o: KubeObject) => `${o.metadata.namespace || "default"}/${o.metadata.name}`;
  return [...map.values()].filter((o) => typeof o?.metadata?.name === "string").sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

export function compileGateway(snapshot: StoreSnapshot, addresses: readonly string[], options: GatewayCompileOptions, version: number, now: number): GatewayTable {
  const warn = options.warn ?? noWarn;
  const services: ServiceIndex = {
    get: (k) => {
      const hit = snapshot.Service.get(k);
      if (hit !== undefined || !k.startsWith("default/")) return hit;
      return snapshot.Service.get(k.slice("default".length)); // stored without a namespace
    },
  };

  // Servers of every Gateway, in namespace/name order; ports take the first server's mode.
  const serversByGateway = new Map<string, CompiledServer[]>();
  const gatewaysByName = new Map<string, string[]>();
  const ports = new Map<number, PortBuilder>();
  for (const gw of sortedObjects(snapshot.Gateway)) {
    const servers = compileServers(gw, warn);
    const key = `${gw.metadata.namespace || "default"}/${gw.metadata.name}`;
    const kept: CompiledServer[] = [];
    for (const s of servers) {
      let p = ports.get(s.port);
      if (p === undefined) {
        p = { port: s.port, mode: s.mode, servers: [], http: new HostIndexBuilder(), certs: new HostIndexBuilder(), sni: new HostIndexBuilder(), tcp: null, requestClientCert: false };
        ports.set(s.port, p);
      } else if (p.mode !== s.mode) {
        warn(`Gateway ${key}: spec.servers[${s.ref.index}] (${s.mode}) on port ${s.port}, which ${p.servers[0]!.ref.gateway} already serves as ${p.mode}; server ignored`);
        continue;
      }
      p.servers.push(s);
      kept.push(s);
      if (s.mode === "HTTPS" || s.mode === "TLS_TERMINATE") addCertificate(p, s, snapshot, warn);
    }
    serversByGateway.set(key, kept);
    const names = gatewaysByName.get(gw.metadata.name) ?? [];
    names.push(key);
    gatewaysByName.set(gw.metadata.name, names);
  }
  for (const p of ports.values()) {
    // Clients without SNI (or with a name no server lists) get the port's first certificate.
    if ((p.mode === "HTTPS" || p.mode === "TLS_TERMINATE") && p.certs.get("*") === undefined) {
      for (const s of p.servers) {
        const cfg = p.certs.get(s.hosts[0]!.host);
        if (cfg !== undefined) {
          p.certs.set("*", cfg);
          break;
        }
      }
    }
  }

  const ctx = { services, clusterDomain: options.clusterDomain, warn };
  for (const vsObj of sortedObjects(snapshot.VirtualService)) {
    const vs = compileVirtualService(vsObj, ctx);
    if (vs === null) continue;
    for (const gwKey of resolveGateways(vs, serversByGateway, gatewaysByName, warn)) {
      for (const server of serversByGateway.get(gwKey) ?? []) bind(vs, server, ports.get(server.port)!, warn);
    }
  }

  const builtPorts: GatewayPort[] = [];
  const routeIds = new Set<string>();
  for (const p of [...ports.values()].sort((a, b) => a.port - b.port)) {
    const http = p.mode === "HTTP" || p.mode === "HTTPS" ? freezeVhosts(p.http) : null;
    if (http !== null) {
      for (const vh of [...Object.values(http.exact), ...http.wildcards.map((w) => w.value), ...(http.any ? [http.any] : [])]) for (const r of vh.routes) routeIds.add(r.id);
    }
    const sni = p.mode === "TLS_PASSTHROUGH" ? p.sni.build() : null;
    if (sni !== null) for (const r of [...Object.values(sni.exact), ...sni.wildcards.map((w) => w.value), ...(sni.any ? [sni.any] : [])]) routeIds.add(r.id);
    const tcp = p.mode === "TCP" || p.mode === "TLS_TERMINATE" ? (p.tcp === null ? null : streamRoute(p.tcp)) : null;
    if (tcp !== null) routeIds.add(tcp.id);
    if ((p.mode === "TCP" || p.mode === "TLS_TERMINATE") && tcp === null) warn(`port ${p.port}: no VirtualService tcp route is bound to it; connections are closed`);
    builtPorts.push(
      Object.freeze({
        port: p.port,
        mode: p.mode,
        servers: Object.freeze(p.servers.map((s) => s.ref)),
        http,
        certs: p.mode === "HTTPS" || p.mode === "TLS_TERMINATE" ? p.certs.build() : null,
        sni,
        tcp,
        requestClientCert: p.requestClientCert,
      }),
    );
  }
  const byPort = Object.create(null) as Record<string, GatewayPort>;
  for (const p of builtPorts) byPort[String(p.port)] = p;
  const listeners: GatewayListener[] = [];
  for (const address of addresses) {
    for (const p of builtPorts) listeners.push(Object.freeze({ key: `${address}:${p.port}`, address, port: p.port, mode: p.mode }));
  }
  listeners.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return Object.freeze({
    version,
    compiledAt: now,
    addresses: Object.freeze([...addresses]),
    ports: Object.freeze(builtPorts),
    byPort: Object.freeze(byPort),
    listeners: Object.freeze(listeners),
    routeIds: Object.freeze([...routeIds].sort()),
  });
}

function addCertificate(p: PortBuilder, s: CompiledServer, snapshot: StoreSnapshot, warn: (msg: string) => void): void {
  const where = `Gateway ${s.ref.gateway}: spec.servers[${s.ref.index}].tls.credentialName ${JSON.stringify(s.credentialName)}`;
  const secret = snapshot.Secret.get(`${s.gatewayNamespace}/${s.credentialName}`);
  if (secret === undefined) {
    warn(`${where}: Secret ${s.gatewayNamespace}/${s.credentialName} not found; its hosts get no certificate until it exists`);
    return;
  }
  const parsed = parseTlsSecret(secret);
  if (!parsed.ok) {
    warn(`${where}: ${parsed.error}; its hosts get no certificate until it is fixed`);
    return;
  }
  const t = parsed.tls;
  let clientCert: TlsServerConfig["clientCert"];
  if (s.clientCert === "secret") clientCert = t.ca !== null ? "require" : "none";
  else if (s.clientCert === "require") {
    clientCert = "require";
    if (t.ca === null) warn(`${where}: tls.mode MUTUAL but the Secret has no ca.crt; every client certificate is refused`);
  } else clientCert = t.ca !== null ? "optional" : "none";
  const cfg: TlsServerConfig = Object.freeze({
    secret: `${s.gatewayNamespace}/${s.credentialName}`,
    revision: `${t.revision}:${clientCert}:${s.minVersion}:${s.maxVersion}:${s.ciphers}:${s.h2 ? "h2" : ""}`,
    cert: t.cert,
    key: t.key,
    ca: t.ca,
    clientCert,
    minVersion: s.minVersion,
    maxVersion: s.maxVersion,
    ciphers: s.ciphers,
    h2: s.h2,
  });
  if (clientCert !== "none") p.requestClientCert = true;
  for (const h of s.hosts) if (p.certs.get(h.host) === undefined) p.certs.set(h.host, cfg);
}

/** The Gateways (namespace/name) a VirtualService names; "mesh" (the sidecars) is not ours. */
function resolveGateways(
  vs: CompiledVirtualService,
  servers: ReadonlyMap<string, unknown>,
  byName: ReadonlyMap<string, readonly string[]>,
  warn: (msg: string) => void,
): string[] {
  const out: string[] = [];
  for (const ref of vs.gateways) {
    if (ref === "mesh") continue;
    let key: string;
    if (ref.includes("/")) key = ref;
    else if (ref.includes(".")) {
      const [name, ns] = ref.split(".");
      key = `${ns}/${name}`;
    } else key = `${vs.namespace}/${ref}`;
    if (!servers.has(key) && !ref.includes("/") && !ref.includes(".")) {
      const elsewhere = byName.get(ref) ?? [];
      if (elsewhere.length === 1) {
        warn(`VirtualService ${vs.key}: gateway ${JSON.stringify(ref)} is not in namespace ${vs.namespace}; bound to ${elsewhere[0]} as EdgeMesh does (write "${elsewhere[0]}")`);
        key = elsewhere[0]!;
      }
    }
    if (!servers.has(key)) {
      warn(`VirtualService ${vs.key}: gateway ${JSON.stringify(ref)} (${key}) not found; not bound to it`);
      continue;
    }
    if (!out.includes(key)) out.push(key);
  }
  return out;
}

function bind(vs: CompiledVirtualService, server: CompiledServer, p: PortBuilder, warn: (msg: string) => void): void {
  const effective: string[] = [];
  for (const sh of server.hosts) {
    if (sh.namespace !== "*" && sh.namespace !== vs.namespace) continue;
    for (const h of vs.hosts) {
      if (!hostCovers(sh.host, h) && !hostCovers(h, sh.host)) continue;
      const e = narrower(h, sh.host);
      if (!effective.includes(e)) effective.push(e);
    }
  }
  if (effective.length === 0) return;
  const onPort = (ports: readonly number[]) => ports.length === 0 || ports.includes(p.port);
  if (p.mode === "HTTP" || p.mode === "HTTPS") {
    const routes = vs.http.filter((r) => r.matches.length === 0 || r.matches.some((m) => m.port === 0 || m.port === p.port));
    if (routes.length === 0) return;
    for (const host of effective) {
      let vh = p.http.get(host);
      if (vh === undefined) {
        vh = { hosts: [host], routes: [] };
        p.http.set(host, vh);
      }
      for (const r of routes) if (!vh.routes.includes(r)) vh.routes.push(r);
    }
  } else if (p.mode === "TCP" || p.mode === "TLS_TERMINATE") {
    const r = vs.tcp.find((t) => onPort(t.ports));
    if (r === undefined) return;
    if (p.tcp === null) p.tcp = r;
    else if (p.tcp.id !== r.id) warn(`VirtualService ${vs.key}: port ${p.port} already has tcp route ${p.tcp.id}; ${r.id} ignored there`);
  } else {
    for (const r of vs.tls) {
      if (!onPort(r.ports)) continue;
      const sniHosts = r.sniHosts.length > 0 ? r.sniHosts : effective;
      for (const sni of sniHosts) {
        for (const e of effective) {
          if (!hostCovers(e, sni) && !hostCovers(sni, e)) continue;
          const host = narrower(sni, e);
          if (p.sni.get(host) === undefined) p.sni.set(host, streamRoute(r));
        }
      }
    }
  }
}

/** Only the StreamRoute fields (compiled tcp/tls routes also carry their match ports and SNI hosts). */
function streamRoute(r: StreamRoute): StreamRoute {
  return Object.freeze({ id: r.id, virtualService: r.virtualService, destinations: r.destinations, totalWeight: r.totalWeight });
}

function freezeVhosts(b: HostIndexBuilder<VhostBuilder>) {
  const frozen = new Map<VhostBuilder, VirtualHost>();
  const f = (v: VhostBuilder): VirtualHost => {
    let out = frozen.get(v);
    if (out === undefined) {
      out = Object.freeze({ hosts: Object.freeze([...v.hosts]), routes: Object.freeze([...v.routes]) });
      frozen.set(v, out);
    }
    return out;
  };
  const raw = b.build();
  const exact = Object.create(null) as Record<string, VirtualHost>;
  for (const k of Object.keys(raw.exact)) exact[k] = f(raw.exact[k]!);
  return Object.freeze({
    exact: Object.freeze(exact),
    wildcards: Object.freeze(raw.wildcards.map((w) => Object.freeze({ suffix: w.suffix, value: f(w.value) }))),
    any: raw.any === null ? null : f(raw.any),
    first: raw.first === null ? null : f(raw.first),
  });
}
