// What every gateway connection reaches through its context: the two tables, the agent's load
// balancer and tunnel dialer, the upstream pool, counters, and the set of live connections the
// one sweep timer checks for deadlines. Built once by createGateway.

import type { GatewayTableSource, TableSource } from "../control/index.ts";
import type { Balancer, RemoteDialer } from "../hotpath/index.ts";
import type { Logger } from "../log/index.ts";
import { LATENCY_BUCKETS_SECONDS, type Counter, type Histogram, type MetricsRegistry } from "../metrics/index.ts";
import type { Scratch } from "./http/rewrite.ts";
import type { UpstreamPool } from "./upstream.ts";

export interface GatewayMetrics {
  accepted: Counter;
  refused: Counter;
  /** Requests answered by the gateway itself, by status. */
  badRequest: Counter;
  headerTimeout: Counter;
  tooLarge: Counter;
  noRoute: Counter;
  unavailable: Counter;
  badGateway: Counter;
  gatewayTimeout: Counter;
  upstreamConnects: Counter;
  upstreamConnectFailures: Counter;
  upstreamReused: Counter;
  upstreamReplays: Counter;
  tlsHandshakeFailures: Counter;
  tlsClientCertRefused: Counter;
  upgrades: Counter;
}

/** Counters of one route, created when the route first appears in a table. */
export interface RouteMetrics {
  /** By status class: 1xx..5xx (index 1..5). */
  readonly responses: readonly Counter[];
  readonly bytesIn: Counter;
  readonly bytesOut: Counter;
  /** From the request head to the end of the response. */
  readonly duration: Histogram;
  /** TCP / TLS routes: connections handed to the route. */
  readonly connections: Counter;
}

export interface GatewayContext {
  readonly routes: TableSource;
  readonly gateway: GatewayTableSource;
  readonly balancer: Balancer;
  /** This node: endpoints with this node name (or none) are dialed directly. */
  readonly nodeName: string;
  readonly remote: RemoteDialer | undefined;
  readonly clock: { now(): number };
  readonly random: () => number;
  readonly log: Logger;
  readonly metrics: MetricsRegistry;
  readonly m: GatewayMetrics;
  readonly pool: UpstreamPool;
  readonly scratch: Scratch;
  /** Every client connection between accept and close (HTTP and stream). */
  readonly live: Set<{ deadline: number; expire(now: number): void }>;
  readonly routeMetrics: Map<string, RouteMetrics>;
  readonly timeouts: GatewayTimeouts;
  maxConnections: number;
  active: number;
  accepting: boolean;
}

/** Deadlines of the data plane (constants.ts has the defaults and why). */
export interface GatewayTimeouts {
  readonly headerMs: number;
  readonly idleMs: number;
  readonly connectMs: number;
  readonly tlsHandshakeMs: number;
}

export function createGatewayMetrics(r: MetricsRegistry): GatewayMetrics {
  const answered = (status: string) => r.counter("gateway_local_responses_total", "Requests the gateway answered itself, by status", { code: status });
  return {
    accepted: r.counter("gateway_connections_total", "Client connections accepted by gateway listeners"),
    refused: r.counter("gateway_connections_refused_total", "Client connections refused at the connection cap"),
    badRequest: answered("400"),
    headerTimeout: answered("408"),
    tooLarge: answered("431"),
    noRoute: answered("404"),
    unavailable: answered("503"),
    badGateway: answered("502"),
    gatewayTimeout: answered("504"),
    upstreamConnects: r.counter("gateway_upstream_connects_total", "New upstream connections opened"),
    upstreamConnectFailures: r.counter("gateway_upstream_connect_failures_total", "Upstream connects that failed or timed out"),
    upstreamReused: r.counter("gateway_upstream_reused_total", "Requests sent on a pooled keep-alive upstream connection"),
    upstreamReplays: r.counter("gateway_upstream_replays_total", "Requests re-sent on a new connection after a pooled one closed before answering"),
    tlsHandshakeFailures: r.counter("gateway_tls_handshake_failures_total", "TLS handshakes that failed (garbage, no certificate, protocol mismatch)"),
    tlsClientCertRefused: r.counter("gateway_tls_client_cert_refused_total", "TLS connections closed for a missing or untrusted client certificate"),
    upgrades: r.counter("gateway_upgrades_total", "Connections switched to a byte stream (WebSocket and other upgrades, h2)"),
  };
}

/** The counters of a route (created on first use: route ids are bounded by the config). */
export function routeMetrics(ctx: GatewayContext, id: string): RouteMetrics {
  let rm = ctx.routeMetrics.get(id);
  if (rm === undefined) {
    const r = ctx.metrics;
    const responses: Counter[] = [];
    for (let c = 0; c <= 5; c++) responses.push(r.counter("gateway_route_responses_total", "Responses per gateway route and status class", { route: id, code: c === 0 ? "other" : `${c}xx` }));
    rm = {
      responses,
      bytesIn: r.counter("gateway_route_request_bytes_total", "Request bytes (head and body) sent upstream per route", { route: id }),
      bytesOut: r.counter("gateway_route_response_bytes_total", "Response bytes sent to clients per route", { route: id }),
      duration: r.histogram("gateway_route_request_duration_seconds", "Seconds from a request's head to the end of its response, per route", LATENCY_BUCKETS_SECONDS, { route: id }),
      connections: r.counter("gateway_route_connections_total", "Connections handed to a TCP or TLS route", { route: id }),
    };
    ctx.routeMetrics.set(id, rm);
  }
  return rm;
}
