// The RemoteDialer over the tunnel: a splice (or a UDP flow) whose endpoint lives on another node
// gets a proxy stream to that node's agent. A failure of any kind (no peer, limits, the far agent
// answered FAILED) is reported through sink.fail, so the proxy fails over to another endpoint.
// When the far agent takes early data, the sink gets the stream before SUCCESS (sink.early) and
// sends the client's first bytes right behind CONNECT. One promise per dial; nothing per chunk.

import type { Protocol } from "../../control/index.ts";
import type { Logger } from "../../log/index.ts";
import { type Counter, LabelBudget, type MetricsRegistry, OVERFLOW_LABEL } from "../../metrics/index.ts";
import type { OpenedProxyStream, ProxyTarget, Tunnel, TunnelStream } from "../../tunnel/index.ts";
import type { DatagramSink, RemoteDialer, StreamSink } from "../types.ts";
import { StreamAdapter } from "./stream.ts";
import { createUdpPeers, type UdpPeers } from "./udp-peers.ts";

/** The part of the tunnel the dialer needs (tests may pass a stub). */
export type ProxyStreamOpener = Pick<Tunnel, "openProxyStream">;

export interface TunnelDialerOptions {
  tunnel: ProxyStreamOpener;
  log: Logger;
  metrics: MetricsRegistry;
  /** Bound on UDP flows to one node (UDP_FLOWS_PER_PEER_DEFAULT when absent). */
  maxUdpFlowsPerPeer?: number;
}

export interface TunnelDialer extends RemoteDialer {
  /**
   * A UDP flow to an endpoint on `node` (udp-peers.ts: multiplexed between our agents, a stream
   * per flow with EdgeMesh). sink.open() may come synchronously, inside this call.
   */
  dialDatagrams(node: string, ip: string, port: number, sink: DatagramSink): void;
  /** UDP flows open now to `node`, and their bound. */
  udpFlowsTo(node: string): { open: number; max: number };
  stop(): void;
}

interface DialerMetrics {
  opened: Counter;
  relayed: Counter;
  failed: Counter;
}

/**
 * Peer nodes with series of their own (3 each); more peers than this share the overflow series.
 * Sites with more edge nodes than this talking to one node are rare; the cap keeps a node's
 * exposition bounded whatever the cluster size.
 */
export const MAX_PEER_SERIES = 256;

/** Per peer node counters, made at the first dial to that node. */
function peerMetrics(registry: MetricsRegistry): (node: string) => DialerMetrics {
  const budget = new LabelBudget(MAX_PEER_SERIES);
  const byNode = new Map<string, DialerMetrics>();
  const make = (node: string): DialerMetrics => ({
    opened: registry.counter("proxy_remote_streams_total", "Tunnel streams opened for endpoints on another node, by that node", { node }),
    relayed: registry.counter("proxy_remote_relayed_streams_total", "Tunnel streams opened over a relayed connection, by peer node", { node }),
    failed: registry.counter("proxy_remote_dial_failures_total", "Tunnel streams to a node that could not be opened (failover follows), by peer node", { node }),
  });
  return (node) => {
    let m = byNode.get(node);
    if (m !== undefined) return m;
    if (budget.take(node)) {
      m = make(node);
      byNode.set(node, m);
      return m;
    }
    m = byNode.get(OVERFLOW_LABEL);
    if (m === undefined) byNode.set(OVERFLOW_LABEL, (m = make(OVERFLOW_LABEL)));
    return m;
  };
}

export function createTunnelDialer(o: TunnelDialerOptions): TunnelDialer {
  const metricsOf = peerMetrics(o.metrics);
  const log = o.log;
  // UDP streams (the multiplexed one per node, or one per flow with EdgeMesh) count with TCP's.
  const udp: UdpPeers = createUdpPeers({
    tunnel: o.tunnel,
    log,
    metrics: o.metrics,
    maxFlowsPerPeer: o.maxUdpFlowsPerPeer,
    streams: { opened: (node, opened) => count(metricsOf(node), opened), failed: (node) => void metricsOf(node).failed.value++ },
  });
  return {
    dial(node: string, ip: string, port: number, protocol: Protocol, sink: StreamSink): void {
      const m = metricsOf(node);
      const target: ProxyTarget = { protocol: protocol === "UDP" ? "udp" : "tcp", ip, port };
      // Early data: one adapter serves the stream before SUCCESS (writes only) and after it.
      let early: StreamAdapter | null = null;
      const options =
        target.protocol === "tcp" && sink.early !== undefined
          ? {
              early: (s: TunnelStream) => {
                early = new StreamAdapter(s);
                sink.early!(early);
              },
            }
          : undefined;
      o.tunnel.openProxyStream(node, target, options).then(
        (opened) => streamOpened(m, opened, sink, early),
        (err) => dialFailed(m, log, node, target, err, sink),
      );
    },
    dialDatagrams(node: string, ip: string, port: number, sink: DatagramSink): void {
      udp.dial(node, ip, port, sink);
    },
    udpFlowsTo: (node) => udp.flowsTo(node),
    stop: () => udp.stop(),
  };
}

function count(m: DialerMetrics, opened: OpenedProxyStream): void {
  m.opened.value++;
  if (opened.relayed) m.relayed.value++;
}

function streamOpened(m: DialerMetrics, opened: OpenedProxyStream, sink: StreamSink, early: StreamAdapter | null): void {
  count(m, opened);
  const a = early !== null && early.stream === opened.stream ? early : new StreamAdapter(opened.stream);
  // Listeners first: buffered bytes are dispatched on a later microtask, after open() set up
  // the splice; an abandoned dial terminates the stream inside open().
  a.attach(sink);
  sink.open(a);
}

function dialFailed(m: DialerMetrics, log: Logger, node: string, target: ProxyTarget, err: unknown, sink: StreamSink): void {
  m.failed.value++;
  log.debug("tunnel stream failed", { node, target: `${target.protocol} ${target.ip}:${target.port}`, err });
  sink.fail(err instanceof Error ? err : new Error(String(err)));
}
