// The edge gateway in dev mode: the manifest folder's Gateway/VirtualService objects served on
// 127.0.0.1, so routing rules can be tried on a laptop. A Gateway port that cannot be bound
// without root (80, 443) or that is taken is served on a free port, and the table printed says
// which. Uses dev mode's store, RouteTable and proxy.

import { gatewayRoutesJson } from "../admin/index.ts";
import { createGatewayPublisher, staticAddresses, systemClock, type EdgeMeshAgentConfig, type ObjectStore, type TableSource } from "../control/index.ts";
import { createGateway } from "../gateway/index.ts";
import type { Proxy } from "../hotpath/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";

export function startDevGateway(o: { store: ObjectStore; routes: TableSource; proxy: Proxy; config: EdgeMeshAgentConfig; nodeName: string; metrics: MetricsRegistry; log: Logger }) {
  const tables = createGatewayPublisher({
    store: o.store,
    addresses: staticAddresses(["127.0.0.1"]),
    compileOptions: { clusterDomain: o.config.modules.edgeDNS.clusterDomain, warn: (m) => o.log.warn(m) },
    log: o.log.child("control"),
    clock: systemClock,
    metrics: o.metrics,
  });
  tables.flush();
  const gateway = createGateway({
    gateway: tables,
    routes: o.routes,
    proxy: o.proxy,
    nodeName: o.nodeName,
    consistentHash: o.config.modules.edgeGateway.loadBalancer.consistentHash,
    maxConnections: 4096,
    metrics: o.metrics,
    log: o.log.child("gateway"),
    freePortFallback: true,
  });
  gateway.start();
  return {
    tables,
    gateway,
    admin: { table: tables, listeners: () => gateway.listeners() },
    /** The gateway part of the dev printout ("" when no Gateway is in the folder). */
    format(): string {
      return formatGateway(gatewayRoutesJson(tables.current(), gateway.listeners()));
    },
    async stop() {
      await gateway.drain(2000);
      tables.stop();
    },
  };
}

export function formatGateway(g: ReturnType<typeof gatewayRoutesJson>): string {
  if (g.ports.length === 0) return "";
  const lines: string[] = [`gateway v${g.version}:`];
  for (const p of g.ports) {
    const l = g.listeners.find((x) => x.port === p.port);
    const scheme = p.mode === "HTTP" ? "http" : p.mode === "HTTPS" ? "https" : p.mode.toLowerCase();
    const where = l?.listen ? `${scheme}://${l.listen}` : `not listening (${l?.error ?? "binding"})`;
    lines.push(`  port ${p.port} ${p.mode} -> ${where}`);
    for (const h of p.hosts) {
      for (const r of h.routes) {
        const when = r.matches.length === 0 ? "every request" : r.matches.map((m) => m.join(" and ")).join(" | ");
        const to = r.destinations.map((d) => `${d.service}:${d.port}${r.destinations.length > 1 ? ` (${d.weight})` : ""}${d.resolved ? "" : " UNRESOLVED"}`).join(", ");
        lines.push(`    ${h.host}  ${when}  ->  ${to}   [${r.id}]`);
      }
    }
    for (const s of p.sni) lines.push(`    sni ${s.host}  ->  ${s.destinations.map((d) => `${d.service}:${d.port}`).join(", ")}   [${s.id}]`);
    if (p.tcp) lines.push(`    tcp  ->  ${p.tcp.destinations.map((d) => `${d.service}:${d.port}`).join(", ")}   [${p.tcp.id}]`);
  }
  return lines.join("\n");
}

