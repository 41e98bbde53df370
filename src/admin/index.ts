// Admin HTTP endpoint: health, readiness, the current RouteTable as JSON, Prometheus metrics,
// tunnel peers. Reads the table and callbacks given to it; it never writes shared state.

import type { RouteTable, TableSource } from "../control/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";

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
}

export interface AdminServer {
  readonly host: string;
  readonly port: number;
  stop(): void;
}

export function startAdminServer(options: AdminOptions): AdminServer {
  const { host, port } = parseHostPort(options.address, "commonConfig.adminAddress");
  const server = Bun.serve({
    hostname: host,
    port,
    fetch(req) {
      const path = new URL(req.url).pathname;
      switch (path) {
        case "/healthz":
          return new Response("ok\n");
        case "/readyz": {
          const r = options.readiness();
          const body = (r.ready ? "ready" : "not ready") + (r.reasons.length ? ": " + r.reasons.join("; ") : "") + "\n";
          return new Response(body, { status: r.ready ? 200 : 503 });
        }
        case "/routes":
          return Response.json(routesJson(options.table.current(), options.listeners()));
        case "/metrics":
          return new Response(options.metrics.render(), { headers: { "content-type": "text/plain; version=0.0.4" } });
        case "/peers":
          return options.peers ? Response.json(options.peers()) : new Response("tunnel disabled\n", { status: 404 });
        default:
          return new Response("not found\n", { status: 404 });
      }
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
