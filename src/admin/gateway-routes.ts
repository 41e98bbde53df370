// The gateway part of /routes: listeners (NIC address x Gateway port, the bound port, a bind
// error) and, per port, the servers and the routes by host, in the order requests try them.
// Certificates are named by Secret; their keys never leave the process.

import type { GatewayTable, HostIndex, HttpMatch, HttpRoute, StreamRoute, StringMatch } from "../control/index.ts";
import { joinHostPort } from "./index.ts";

/** What the gateway's data plane reports per listener (GatewayListenerInfo has this shape). */
export interface GatewayListenerView {
  readonly address: string;
  readonly port: number;
  readonly boundPort: number;
  readonly mode: string;
  readonly error: string;
}

function hosts<T>(index: HostIndex<T> | null): { host: string; value: T }[] {
  if (index === null) return [];
  const out: { host: string; value: T }[] = [];
  for (const host of Object.keys(index.exact).sort()) out.push({ host, value: index.exact[host]! });
  for (const w of index.wildcards) out.push({ host: `*${w.suffix}`, value: w.value });
  if (index.any !== null) out.push({ host: "*", value: index.any });
  return out;
}

function str(m: StringMatch): string {
  return `${m.kind} ${JSON.stringify(m.value)}`;
}

function match(m: HttpMatch): string[] {
  const out: string[] = [];
  if (m.uri) out.push(`uri ${str(m.uri)}${m.ignoreUriCase ? " (any case)" : ""}`);
  if (m.method) out.push(`method ${str(m.method)}`);
  if (m.authority) out.push(`authority ${str(m.authority)}`);
  for (const h of m.headers) out.push(h.match ? `header ${h.name} ${str(h.match)}` : `header ${h.name} present`);
  for (const h of m.withoutHeaders) out.push(h.match ? `no header ${h.name} ${str(h.match)}` : `no header ${h.name}`);
  for (const q of m.queryParams) out.push(q.match ? `query ${q.name} ${str(q.match)}` : `query ${q.name} present`);
  if (m.port) out.push(`port ${m.port}`);
  return out;
}

function destinations(r: HttpRoute | StreamRoute) {
  return r.destinations.map((d) => ({ service: d.service, port: d.port, weight: d.weight, resolved: d.key !== "" }));
}

function httpRoute(r: HttpRoute) {
  return {
    id: r.id,
    matches: r.matches.map(match),
    destinations: destinations(r),
    rewrite: r.rewriteUri !== null || r.rewriteAuthority !== null ? { uri: r.rewriteUri, authority: r.rewriteAuthority } : undefined,
    timeoutMs: r.timeoutMs || undefined,
    retries: r.retries,
  };
}

export function gatewayRoutesJson(table: GatewayTable, listeners: ReadonlyMap<string, GatewayListenerView>) {
  return {
    version: table.version,
    addresses: table.addresses,
    listeners: [...listeners.values()].map((l) => ({
      address: l.address,
      port: l.port,
      mode: l.mode,
      listen: l.boundPort > 0 ? joinHostPort(l.address, l.boundPort) : "",
      error: l.error || undefined,
    })),
    ports: table.ports.map((p) => ({
      port: p.port,
      mode: p.mode,
      servers: p.servers.map((s) => ({ gateway: s.gateway, index: s.index, protocol: s.protocol, hosts: s.hosts, tls: s.tlsMode || undefined, credentialName: s.credentialName || undefined })),
      certificates: hosts(p.certs).map(({ host, value }) => ({ host, secret: value.secret, clientCertificates: value.clientCert, minVersion: value.minVersion || undefined })),
      hosts: hosts(p.http).map(({ host, value }) => ({ host, routes: value.routes.map(httpRoute) })),
      sni: hosts(p.sni).map(({ host, value }) => ({ host, id: value.id, destinations: destinations(value) })),
      tcp: p.tcp ? { id: p.tcp.id, destinations: destinations(p.tcp) } : undefined,
    })),
  };
}
