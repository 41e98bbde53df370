// Admin HTTP endpoints: health, readiness, the current RouteTable as JSON, Prometheus metrics,
// tunnel peers and per service port limits. Reads the table and callbacks given to it; it never writes shared state.
// Two listeners serve them: the admin address (commonConfig.adminAddress, loopback by default)
// serves every route; the metrics listener (modules.edgeTunnel.metricConfig, EdgeMesh's
// Prometheus port, reachable from other hosts) serves only the routes marked readOnly, and
// only GET and HEAD. A route that changes anything must never be marked readOnly.

import type { GatewayTableSource, RouteTable, TableSource } from "../control/index.ts";
import { gatewayRoutesJson, type GatewayListenerView } from "./gateway-routes.ts";

export { gatewayRoutesJson, type GatewayListenerView } from "./gateway-routes.ts";
import type { MetricsRegistry } from "../metrics/index.ts";

export { NEAR_LIMIT_RATIO, peersJson, servicesJson, type FlowCounts, type PeerLike, type PeerView, type ServiceUse, type Use } from "./peers.ts";
import { servicesJson } from "./peers.ts";

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready, or why degraded while ready (e.g. "stale metadata since ..."). */
  readonly reasons: readonly string[];
}

export interface AdminOptions {
  /** "HOST:PORT"; port 0 picks a free one. */
  address: string;
  table: TableSource;
  /** Listener address per ServicePort key (from the hot path). */
  listeners: () => ReadonlyMap<string, ListenAddress>;
  readiness: () => Readiness;
  metrics: MetricsRegistry;
  peers?: () => unknown;
  /** The edge gateway's table and listeners: /routes shows them under "gateway". */
  gateway?: { table: GatewayTableSource; listeners: () => ReadonlyMap<string, GatewayListenerView> };
}

export interface AdminServer {
  readonly host: string;
  readonly port: number;
  stop(): void;
}

interface Route {
  /** Changes nothing and reveals nothing secret: may be served beyond loopback. */
  readonly readOnly: boolean;
  handle(o: AdminOptions): Response;
}

const PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8";

/** Every admin route. */
export const ROUTES: Readonly<Record<string, Route>> = {
  "/healthz": { readOnly: true, handle: () => new Response("ok\n") },
  "/readyz": {
    readOnly: true,
    handle(o) {
      const r = o.readiness();
      const body = (r.ready ? "ready" : "not ready") + (r.reasons.length ? ": " + r.reasons.join("; ") : "") + "\n";
      return new Response(body, { status: r.ready ? 200 : 503 });
    },
  },
  "/routes": {
    readOnly: true,
    handle: (o) =>
      Response.json(o.gateway ? { ...routesJson(o.table.current(), o.listeners()), gateway: gatewayRoutesJson(o.gateway.table.current(), o.gateway.listeners()) } : routesJson(o.table.current(), o.listeners())),
  },
  "/metrics": { readOnly: true, handle: (o) => new Response(o.metrics.render(), { headers: { "content-type": PROMETHEUS_TEXT } }) },
  "/peers": {
    readOnly: true,
    handle: (o) => (o.peers ? Response.json(o.peers()) : new Response("tunnel disabled\n", { status: 404 })),
  },
  // The per service port section of /peers: each port's use against its own limit. A path of
  // its own because /peers is a list that scripts and tests read as one; served with or
  // without the tunnel (the limits are the proxy's).
  "/peers/services": { readOnly: true, handle: (o) => Response.json(servicesJson(o.metrics.snapshot())) },
};

/** The admin endpoint on commonConfig.adminAddress: every route. */
export function startAdminServer(options: AdminOptions): AdminServer {
  return serve(options, parseHostPort(options.address, "commonConfig.adminAddress"), false);
}

export interface MetricsListenerOptions extends Omit<AdminOptions, "address"> {
  /** modules.edgeTunnel.metricConfig.bindAddress */
  bindAddress: string;
  /** modules.edgeTunnel.metricConfig.port; 0 picks a free one. */
  port: number;
}

/** EdgeMesh's metrics listener (modules.edgeTunnel.metricConfig): read-only routes, GET/HEAD only. */
export function startMetricsListener(options: MetricsListenerOptions): AdminServer {
  const address = { host: options.bindAddress, port: options.port };
  try {
    return serve({ ...options, address: joinHostPort(address.host, address.port) }, address, true);
  } catch (err) {
    throw new Error(
      `modules.edgeTunnel.metricConfig: cannot listen on ${joinHostPort(address.host, address.port)} (${(err as Error).message}); ` +
        "free the port, or set metricConfig.port / metricConfig.bindAddress",
      { cause: err },
    );
  }
}

function serve(options: AdminOptions, { host, port }: { host: string; port: number }, readOnlyOnly: boolean): AdminServer {
  const server = Bun.serve({
    hostname: host,
    port,
    fetch(req) {
      const route = ROUTES[new URL(req.url).pathname];
      if (route === undefined || (readOnlyOnly && !route.readOnly)) return new Response("not found\n", { status: 404 });
      if (readOnlyOnly && req.method !== "GET" && req.method !== "HEAD") {
        return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      }
      return route.handle(options);
    },
  });
  return { host, port: server.port ?? port, stop: () => server.stop(true) };
}

/** The /routes document: version and, per service port, where it listens and where it goes. */
export function routesJson(table: RouteTable, listeners: ReadonlyMap<string, ListenAddress>) {
  return {
    version: table.version,
    services: table.ports.map((p) => {
      const l = listeners.get(p.key);
      return {
        namespace: p.namespace,
        name: p.name,
        port: p.port,
        protocol: p.protocol,
        clusterIP: p.clusterIPs[0] ?? "",
        listen: l ? joinHostPort(l.host, l.port) : "",
        policy: p.policy.kind === "CONSISTENT_HASH_HEADER" ? `${p.policy.kind}(${p.policy.header})` : p.policy.kind,
        endpoints: p.endpoints.map((e) => ({ ip: e.ip, port: e.port, node: e.node })),
      };
    }),
  };
}

export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parse "HOST:PORT" / "[v6]:PORT"; the error names the option it came from. */
export function parseHostPort(value: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${what}: expected HOST:PORT, got ${JSON.stringify(value)}`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}
