// createGateway(): the edge gateway's data plane. It follows the GatewayTable (listeners per NIC
// address and Gateway port) and serves each connection by its port's mode: HTTP/HTTPS routed per
// request with pooled upstreams, TCP / TLS routes spliced by the agent's proxy. Endpoints and LB
// policies come from the RouteTable; endpoints on other nodes are reached through the tunnel
// dialer. One coarse timer checks every deadline.

import type { GatewayTableSource, TableSource } from "../control/index.ts";
import { createBalancer, type Proxy, type RemoteDialer, type RingConfig } from "../hotpath/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { CLIENT_IDLE_TIMEOUT_MS, CONNECT_TIMEOUT_MS, HEADER_TIMEOUT_MS, SCRATCH_INITIAL_BYTES, SWEEP_INTERVAL_MS, TLS_HANDSHAKE_TIMEOUT_MS } from "./constants.ts";
import { createGatewayMetrics, type GatewayContext, type GatewayTimeouts } from "./context.ts";
import { Scratch } from "./http/rewrite.ts";
import { ListenerSet, type GatewayListenerInfo } from "./listeners.ts";
import { UpstreamPool } from "./upstream.ts";

export interface GatewayOptions {
  gateway: GatewayTableSource;
  routes: TableSource;
  /** The agent's proxy, run without listeners: TCP and TLS routes are spliced by it. */
  proxy: Proxy;
  /** This node: endpoints here are dialed directly, others through `remote`. */
  nodeName: string;
  remote?: RemoteDialer;
  consistentHash: RingConfig;
  /** Concurrent HTTP client connections (each may hold an upstream too). */
  maxConnections: number;
  metrics: MetricsRegistry;
  log: Logger;
  clock?: { now(): number };
  random?: () => number;
  /** Dev mode: a Gateway port that cannot be bound is served on a free port (printed). */
  freePortFallback?: boolean;
  /** Deadlines; defaults in constants.ts. */
  timeouts?: Partial<GatewayTimeouts>;
}

export interface GatewayStats {
  activeConnections: number;
  idleUpstreams: number;
  listeners: number;
}

export interface Gateway {
  start(): void;
  /** By listener key ("address:port"). */
  listeners(): ReadonlyMap<string, GatewayListenerInfo>;
  onListenersChanged(cb: (l: ReadonlyMap<string, GatewayListenerInfo>) => void): () => void;
  /** Stop accepting, let requests finish until the deadline, then close everything. */
  drain(deadlineMs: number): Promise<void>;
  stop(): void;
  stats(): GatewayStats;
}

/** Balancer state is pruned this often. */
const PRUNE_INTERVAL_MS = 10_000;
/** Idle upstreams are checked for their timeout this often. */
const POOL_SWEEP_INTERVAL_MS = 1000;

export function createGateway(o: GatewayOptions): Gateway {
  const clock = o.clock ?? Date;
  const ctx: GatewayContext = {
    routes: o.routes,
    gateway: o.gateway,
    balancer: createBalancer({ consistentHash: o.consistentHash, random: o.random, clock }),
    nodeName: o.nodeName,
    remote: o.remote,
    clock,
    random: o.random ?? Math.random,
    log: o.log,
    metrics: o.metrics,
    m: createGatewayMetrics(o.metrics),
    pool: new UpstreamPool(clock),
    scratch: new Scratch(SCRATCH_INITIAL_BYTES),
    live: new Set(),
    routeMetrics: new Map(),
    timeouts: {
      headerMs: o.timeouts?.headerMs ?? HEADER_TIMEOUT_MS,
      idleMs: o.timeouts?.idleMs ?? CLIENT_IDLE_TIMEOUT_MS,
      connectMs: o.timeouts?.connectMs ?? CONNECT_TIMEOUT_MS,
      tlsHandshakeMs: o.timeouts?.tlsHandshakeMs ?? TLS_HANDSHAKE_TIMEOUT_MS,
    },
    maxConnections: o.maxConnections,
    active: 0,
    accepting: true,
  };
  o.metrics.gaugeFn("gateway_connections_active", "Gateway client connections open now (HTTP/HTTPS)", () => ctx.active);
  o.metrics.gaugeFn("gateway_upstream_idle", "Idle keep-alive upstream connections in the pool", () => ctx.pool.idleCount());
  const watchers = new Set<(l: ReadonlyMap<string, GatewayListenerInfo>) => void>();
  const listeners = new ListenerSet({
    ctx,
    proxy: o.proxy,
    freePortFallback: o.freePortFallback ?? false,
    onChange() {
      const info = listeners.info();
      for (const cb of watchers) {
        try {
          cb(info);
        } catch (err) {
          o.log.error("gateway listener watcher failed", { err });
        }
      }
    },
  });
  let timer: ReturnType<typeof setInterval> | null = null;
  let unsubscribe: (() => void) | null = null;
  let lastPool = 0;
  let lastPrune = 0;

  const sweep = (): void => {
    const now = clock.now();
    for (const c of ctx.live) {
      if (c.deadline !== 0 && now >= c.deadline) c.expire(now);
    }
    if (now - lastPool >= POOL_SWEEP_INTERVAL_MS) {
      lastPool = now;
      ctx.pool.sweep(now);
      listeners.retry(o.gateway.current());
    }
    if (now - lastPrune >= PRUNE_INTERVAL_MS) {
      lastPrune = now;
      ctx.balancer.prune(o.routes.current());
    }
  };

  const stop = (): void => {
    ctx.accepting = false;
    unsubscribe?.();
    unsubscribe = null;
    if (timer !== null) clearInterval(timer);
    timer = null;
    listeners.closeAll();
    ctx.pool.closeAll();
  };

  return {
    start() {
      if (timer !== null) return;
      timer = setInterval(sweep, SWEEP_INTERVAL_MS);
      timer.unref?.();
      unsubscribe = o.gateway.subscribe((t) => listeners.reconcile(t));
      listeners.reconcile(o.gateway.current());
    },
    listeners: () => listeners.info(),
    onListenersChanged(cb) {
      watchers.add(cb);
      return () => watchers.delete(cb);
    },
    async drain(deadlineMs) {
      ctx.accepting = false;
      listeners.closeAll();
      const end = Date.now() + deadlineMs;
      while (ctx.active > 0 && Date.now() < end) await Bun.sleep(Math.min(50, Math.max(1, end - Date.now())));
      stop();
    },
    stop,
    stats: () => ({ activeConnections: ctx.active, idleUpstreams: ctx.pool.idleCount(), listeners: listeners.info().size }),
  };
}
