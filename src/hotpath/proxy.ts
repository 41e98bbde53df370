// The proxy: follows the RouteTable and keeps one listener per service port (Bun.listen for TCP,
// Bun.udpSocket for UDP) on bindHost, ephemeral port. A key that persists across versions keeps its
// listener and port; a key that leaves closes its listener, while connections already accepted
// keep running until either side ends them. One coarse interval drives every deadline.

import type { TCPSocketListener } from "bun";
import type { RouteTable, ServicePort } from "../control/index.ts";
import {
  DIAL_TIMEOUT_MS,
  UDP_FLOWS_EXPIRED_HELP,
  UDP_FLOWS_MAX_DEFAULT,
  UDP_SWEEP_INTERVAL_MS,
  WAIT_SWEEP_INTERVAL_MS,
} from "./constants.ts";
import { createBalancer } from "./lb/index.ts";
import { connectHistograms, DataPathLog, PortMetricsSet } from "./observe.ts";
import { PHASE_CLOSED, type Conn, type TcpContext, type TcpListenerState } from "./tcp/conn.ts";
import { acceptStream, sweepWaiting } from "./tcp/dial.ts";
import { acceptRouted } from "./tcp/routed.ts";
import { abort, clientHandler } from "./tcp/splice.ts";
import type { ListenerInfo, Proxy, ProxyOptions } from "./types.ts";
import { LruList } from "./lru.ts";
import { closeUdpListener, openUdpListener, sweepUdp, type Flow, type UdpContext, type UdpListener } from "./udp/forwarder.ts";

/** Balancer state (cursors of removed ports, expired affinity) is pruned this often. */
const PRUNE_INTERVAL_MS = 10_000;
/** Held-back data-path warnings are reported (and idle keys forgotten) this often. */
const WARN_FLUSH_INTERVAL_MS = 1000;

interface TcpEntry {
  readonly sp: ServicePort;
  readonly state: TcpListenerState;
  readonly listener: TCPSocketListener<TcpListenerState>;
}

export function createProxy(options: ProxyOptions): Proxy {
  const clock = options.clock ?? Date;
  const log = options.log;
  const metrics = options.metrics;
  const balancer = createBalancer({ consistentHash: options.consistentHash, random: options.random, clock });
  const counter = (name: string, help: string, labels?: Record<string, string>) => metrics.counter(name, help, labels);
  const ports = new PortMetricsSet(metrics);
  const dlog = new DataPathLog(log, metrics, clock);

  const tcp: TcpContext = {
    table: options.table,
    balancer,
    nodeName: options.nodeName,
    remote: options.remote,
    clock,
    dialTimeoutMs: options.dialTimeoutMs ?? DIAL_TIMEOUT_MS,
    maxConnections: options.maxConnections,
    maxConnectionsPerPort: options.maxConnectionsPerPort,
    log,
    connect: connectHistograms(metrics),
    dlog,
    zc: options.zeroCopy ?? null,
    m: {
      accepted: counter("proxy_tcp_accepted_total", "TCP connections accepted by service listeners"),
      refusedLimit: counter("proxy_tcp_refused_total", "TCP connections refused", { reason: "limit" }),
      refusedNoEndpoint: counter("proxy_tcp_refused_total", "TCP connections refused", { reason: "no_endpoint" }),
      dialFailures: counter("proxy_tcp_dial_failures_total", "Upstream dials that failed", { reason: "error" }),
      dialTimeouts: counter("proxy_tcp_dial_failures_total", "Upstream dials that failed", { reason: "timeout" }),
      resets: counter("proxy_tcp_resets_total", "Proxied TCP connections ended by a reset or error"),
      bytesUp: counter("proxy_tcp_bytes_total", "Bytes spliced", { direction: "to_endpoint" }),
      bytesDown: counter("proxy_tcp_bytes_total", "Bytes spliced", { direction: "to_client" }),
    },
    waiting: new Set(),
    live: new Set(),
    pool: [],
    active: 0,
    accepting: true,
  };
  const udp: UdpContext = {
    table: options.table,
    balancer,
    log,
    dlog,
    maxFlows: options.maxUdpFlows ?? UDP_FLOWS_MAX_DEFAULT,
    nodeName: options.nodeName,
    remote: options.remote,
    idleTimeoutMs: options.udpIdleTimeoutMs,
    now: clock.now(),
    flows: 0,
    accepting: true,
    lru: new LruList<Flow>(),
    capLoggedAt: -Infinity,
    capNotLogged: 0,
    m: {
      flowsCreated: counter("proxy_udp_flows_total", "UDP flows created"),
      flowsExpired: counter("proxy_udp_flows_expired_total", UDP_FLOWS_EXPIRED_HELP),
      dropped: counter("proxy_udp_dropped_total", "Datagrams dropped (backpressure, flow cap, queue full)"),
      sendErrors: counter("proxy_udp_send_errors_total", "UDP send() calls that threw"),
      noEndpoint: counter("proxy_udp_no_endpoint_total", "Datagrams for a port without endpoints"),
      socketErrors: counter("proxy_udp_socket_errors_total", "UDP socket errors (ICMP unreachable and others)"),
      remoteFailures: counter("proxy_udp_remote_failures_total", "UDP flows to another node whose tunnel stream failed"),
      evicted: counter("proxy_udp_flows_evicted_total", "UDP flows closed to make room for a new one (least recently used first)", { limit: "agent" }),
    },
  };
  metrics.gaugeFn("proxy_tcp_active", "Proxied TCP connections open now", () => tcp.active);
  metrics.gaugeFn("proxy_tcp_active_max", "Limit on proxied TCP connections open at once (the agent's)", () => tcp.maxConnections);
  metrics.gaugeFn("proxy_service_active_max", "Limit on TCP connections open at once per service port (maxConnectionsPerPort; 0: none)", () => tcp.maxConnectionsPerPort, { protocol: "TCP" });
  metrics.gaugeFn("proxy_udp_flows_max", "Limit on UDP flows open at once (the agent's; at it the least recently used flow is closed)", () => udp.maxFlows);
  metrics.gaugeFn("proxy_udp_flows_active", "UDP flows open now", () => udp.flows);
  const bindFailures = counter("proxy_listen_failures_total", "Service listeners that could not be opened");

  const tcpListeners = new Map<string, TcpEntry>();
  const udpListeners = new Map<string, UdpListener>();
  let published: ReadonlyMap<string, ListenerInfo> = new Map();
  const watchers = new Set<(m: ReadonlyMap<string, ListenerInfo>) => void>();
  let unsubscribe: (() => void) | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;
  let lastUdpSweep = 0;
  let lastPrune = 0;
  let lastWarnFlush = 0;
  let running = false;
  const udpSweepMs = Math.max(WAIT_SWEEP_INTERVAL_MS, Math.min(UDP_SWEEP_INTERVAL_MS, options.udpIdleTimeoutMs / 2));

  function publish(): void {
    const next = new Map<string, ListenerInfo>();
    for (const [key, e] of tcpListeners) next.set(key, { host: options.bindHost, port: e.listener.port, protocol: "TCP" });
    for (const [key, ls] of udpListeners) {
      if (ls.socket !== null) next.set(key, { host: options.bindHost, port: ls.socket.port, protocol: "UDP" });
    }
    published = next;
    for (const cb of watchers) {
      try {
        cb(published);
      } catch (err) {
        log.error("listener watcher failed", { err });
      }
    }
  }

  function reconcile(table: RouteTable): void {
    if (!running || options.listen === false) return;
    let changed = false;
    for (const [key, e] of tcpListeners) {
      if (table.byKey[key]?.protocol === "TCP") continue;
      e.listener.stop(false); // accepted connections live on
      tcpListeners.delete(key);
      ports.release(e.sp);
      changed = true;
    }
    for (const [key, ls] of udpListeners) {
      if (table.byKey[key]?.protocol === "UDP") continue;
      closeUdpListener(ls);
      udpListeners.delete(key);
      ports.release(ls.sp);
      changed = true;
    }
    for (const sp of table.ports) {
      if (sp.protocol === "TCP" && !tcpListeners.has(sp.key)) {
        const state: TcpListenerState = { key: sp.key, ctx: tcp, pm: ports.acquire(sp), active: 0 };
        ports.active(sp, () => state.active);
        try {
          const listener = Bun.listen<TcpListenerState>({
            hostname: options.bindHost,
            port: 0,
            allowHalfOpen: true,
            data: state,
            socket: clientHandler as never,
          });
          tcpListeners.set(sp.key, { sp, state, listener });
          changed = true;
        } catch (err) {
          ports.release(sp);
          bindFailures.value++;
          log.error("tcp listener failed", { key: sp.key, host: options.bindHost, err });
        }
      } else if (sp.protocol === "UDP" && !udpListeners.has(sp.key)) {
        const ls = openUdpListener(udp, sp, ports.acquire(sp), options.bindHost, () => publish());
        ports.active(sp, () => ls.count);
        udpListeners.set(sp.key, ls);
      }
    }
    balancer.prune(table);
    if (changed) publish();
  }

  function tick(): void {
    const now = clock.now();
    udp.now = now;
    sweepWaiting(tcp);
    if (now - lastUdpSweep >= udpSweepMs) {
      lastUdpSweep = now;
      sweepUdp(udp);
    }
    if (now - lastWarnFlush >= WARN_FLUSH_INTERVAL_MS) {
      lastWarnFlush = now;
      dlog.flush();
    }
    if (now - lastPrune >= PRUNE_INTERVAL_MS) {
      lastPrune = now;
      balancer.prune(options.table.current());
    }
  }

  function closeListeners(): void {
    for (const e of tcpListeners.values()) e.listener.stop(false);
    tcpListeners.clear();
  }

  function stop(): Promise<void> | undefined {
    running = false;
    tcp.accepting = false;
    udp.accepting = false;
    unsubscribe?.();
    unsubscribe = null;
    if (timer !== null) clearInterval(timer);
    timer = null;
    closeListeners();
    for (const c of [...tcp.live] as Conn[]) if (c.phase !== PHASE_CLOSED) abort(c);
    for (const ls of udpListeners.values()) closeUdpListener(ls);
    udpListeners.clear();
    publish();
    // Adopted pairs have no Bun sockets for abort() to close: the engine resets them and reports
    // each as "stopped", which releases its Conn. The engine is this proxy's to stop.
    return tcp.zc?.stop();
  }

  return {
    start() {
      if (running) return;
      running = true;
      tcp.accepting = true;
      udp.accepting = true;
      timer = setInterval(tick, WAIT_SWEEP_INTERVAL_MS);
      timer.unref?.();
      unsubscribe = options.table.subscribe(reconcile);
      reconcile(options.table.current());
    },
    listeners: () => published,
    onListenersChanged(cb) {
      watchers.add(cb);
      return () => watchers.delete(cb);
    },
    async drain(deadlineMs) {
      // Stop accepting (TCP listeners close; UDP sockets stay to carry replies of open flows).
      tcp.accepting = false;
      udp.accepting = false;
      closeListeners();
      publish();
      const end = Date.now() + deadlineMs;
      while (tcp.active > 0 && Date.now() < end) await Bun.sleep(Math.min(50, Math.max(1, end - Date.now())));
      // Resolves once the engine reset what it still held and closed its fds.
      await stop();
    },
    stop() {
      void stop();
    },
    spliceInbound: (ip, port, stream, result) => acceptStream(tcp, ip, port, stream, result),
    spliceRouted: (sp, clientIp, stream, early) => acceptRouted(tcp, sp, clientIp, stream, early),
    spliceTo: (node, ip, port, stream, result) => acceptStream(tcp, ip, port, stream, result, node),
    stats: () => ({
      activeTcp: tcp.active,
      udpFlows: udp.flows,
      tcpAccepted: tcp.m.accepted.value,
      tcpRefused: tcp.m.refusedLimit.value + tcp.m.refusedNoEndpoint.value,
      dialFailures: tcp.m.dialFailures.value + tcp.m.dialTimeouts.value,
      listeners: published.size,
    }),
  };
}
