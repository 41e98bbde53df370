// The receiving end of the tunnel: a CONNECT from another agent for ip:port on this node. The
// target must be an endpoint the current table places on this node (or, with SOCKS5 on, one of
// the node's own addresses, any TCP port), else FAILED (counted). TCP:
// the stream is spliced into a local connection by the proxy (spliceInbound), and the handler's
// promise resolves true (the tunnel answers SUCCESS) only once that local dial succeeded. UDP
// from one of our agents: the stream is that agent's multiplexed stream for all its UDP flows to
// this node (mux-inbound.ts). UDP from an EdgeMesh agent: a connected local UDP socket per
// stream, raw bytes <-> datagrams, closed when the stream closes or idles out (an EdgeMesh peer
// never closes its UDP streams: its issue #567).

import type { udp } from "bun";
import type { Protocol, TableSource } from "../../control/index.ts";
import type { Logger } from "../../log/index.ts";
import type { Counter, MetricsRegistry } from "../../metrics/index.ts";
import type { ProxyHeader, TunnelStream } from "../../tunnel/index.ts";
import { UDP_SWEEP_INTERVAL_MS } from "../constants.ts";
import type { DatagramSink, Proxy } from "../types.ts";
import { StreamDatagrams } from "./datagrams.ts";
import { createMuxInbound } from "./mux-inbound.ts";
import { StreamAdapter } from "./stream.ts";
import { LocalTargets } from "./targets.ts";

export interface InboundOptions {
  proxy: Pick<Proxy, "spliceInbound">;
  table: TableSource;
  nodeName: string;
  udpIdleTimeoutMs: number;
  /**
   * This node's own addresses, which peers may reach on any TCP port (the far side of a SOCKS5
   * CONNECT, given when socks5Proxy is enabled here; EdgeMesh's far side dials whatever it is
   * asked). Absent: only endpoints of services on this node.
   */
  hostAddresses?: { has(ip: string): boolean };
  log: Logger;
  metrics: MetricsRegistry;
  /** Far sockets for one peer's multiplexed UDP flows (default 4096); more evict the oldest. */
  udpFlowsPerPeer?: number;
}

export interface InboundHandler {
  /** Give this to tunnel.handleProxy. Never throws. */
  handle(header: ProxyHeader, stream: TunnelStream): boolean | Promise<boolean>;
  /** Inbound UDP relays open now (a stream each, or a flow of a multiplexed stream). */
  udpRelays(): number;
  /** Far sockets open for `peer`'s (a peer ID) multiplexed UDP flows, and their bound. */
  udpFlowsOf(peer: string): { open: number; max: number };
  stop(): void;
}

interface InboundMetrics {
  notEndpoint: Counter;
  limit: Counter;
  dialFailed: Counter;
  udpExpired: Counter;
  udpErrors: Counter;
}

interface UdpState {
  readonly relays: Set<UdpRelay>;
  readonly m: InboundMetrics;
  now: number;
}

class UdpRelay implements DatagramSink {
  sock: udp.ConnectedSocket<"uint8array"> | null = null;
  closed = false;
  lastSeen: number;
  constructor(readonly ch: StreamDatagrams, readonly st: UdpState) {
    this.lastSeen = Date.now(); // once per flow; the sweep's coarse clock may be stale
  }
  open(): void {}
  fail(): void {}
  datagram(d: Uint8Array): void {
    this.lastSeen = this.st.now;
    try {
      this.sock?.send(d);
    } catch {
      this.st.m.udpErrors.value++;
    }
  }
  fromLocal(d: Uint8Array): void {
    this.lastSeen = this.st.now;
    this.ch.send(d);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.st.relays.delete(this);
    try {
      this.sock?.close();
    } catch {
      // already closed
    }
    this.sock = null;
    this.ch.close();
  }
}

export function createInboundHandler(o: InboundOptions): InboundHandler {
  const counter = (reason: string) => o.metrics.counter("proxy_inbound_refused_total", "Tunnel CONNECTs answered FAILED", { reason });
  const m: InboundMetrics = {
    notEndpoint: counter("not_endpoint"),
    limit: counter("limit"),
    dialFailed: counter("dial_failed"),
    udpExpired: o.metrics.counter("proxy_inbound_udp_expired_total", "Inbound UDP relays closed after idling"),
    udpErrors: o.metrics.counter("proxy_inbound_udp_errors_total", "Inbound UDP send errors"),
  };
  const targets = new LocalTargets(o.nodeName);
  const st: UdpState = { relays: new Set(), m, now: Date.now() };
  const mux = createMuxInbound({ table: o.table, targets, idleTimeoutMs: o.udpIdleTimeoutMs, log: o.log, metrics: o.metrics, maxFlowsPerPeer: o.udpFlowsPerPeer });
  o.metrics.gaugeFn("proxy_inbound_udp_relays", "Inbound UDP relays open now (a stream each, or a flow of a multiplexed stream)", () => st.relays.size + mux.total);
  const sweepMs = Math.max(50, Math.min(UDP_SWEEP_INTERVAL_MS, o.udpIdleTimeoutMs / 2));
  const timer = setInterval(() => {
    st.now = Date.now();
    mux.sweep(st.now);
    for (const r of st.relays) {
      if (st.now - r.lastSeen > o.udpIdleTimeoutMs) {
        m.udpExpired.value++;
        r.close();
      }
    }
  }, sweepMs);
  timer.unref?.();

  function tcp(h: ProxyHeader, stream: TunnelStream): Promise<boolean> {
    const a = new StreamAdapter(stream, true);
    return new Promise<boolean>((resolve) => {
      // The opener may give up while we dial: answer nothing, release the handler.
      stream.addEventListener("close", () => resolve(false), { once: true });
      const sink = o.proxy.spliceInbound(h.ip, h.port, a, (ok) => {
        if (ok) a.handshaking = false; // SUCCESS goes out before any byte we write
        else m.dialFailed.value++;
        resolve(ok);
      });
      if (sink === null) {
        m.limit.value++;
        resolve(false);
        return;
      }
      a.attach(sink);
    });
  }

  function udpFlow(h: ProxyHeader, stream: TunnelStream): Promise<boolean> {
    const ch = new StreamDatagrams(stream, h.udpFramed);
    const relay = new UdpRelay(ch, st);
    return Bun.udpSocket({
      binaryType: "uint8array",
      connect: { hostname: h.ip, port: h.port },
      socket: {
        data: (_s, buf) => relay.fromLocal(buf),
        error: () => {
          m.udpErrors.value++;
        },
      },
    }).then(
      (sock) => {
        if (stream.status !== "open") {
          sock.close();
          return false;
        }
        relay.sock = sock;
        st.relays.add(relay);
        ch.attach(relay);
        return true;
      },
      (err) => {
        m.dialFailed.value++;
        o.log.debug("inbound udp socket failed", { target: `${h.ip}:${h.port}`, err });
        return false;
      },
    );
  }

  return {
    handle(h, stream) {
      const protocol: Protocol = h.protocol === "udp" ? "UDP" : "TCP";
      if (!targets.has(o.table.current(), protocol, h.ip, h.port) && !(protocol === "TCP" && o.hostAddresses?.has(h.ip))) {
        m.notEndpoint.value++;
        o.log.debug("tunnel CONNECT refused: not an endpoint on this node", { peer: h.remoteNode ?? h.remotePeer, target: `${protocol} ${h.ip}:${h.port}` });
        return false;
      }
      try {
        if (protocol === "UDP" && h.udpMux) {
          mux.adopt(h, stream);
          return true;
        }
        return protocol === "TCP" ? tcp(h, stream) : udpFlow(h, stream);
      } catch (err) {
        o.log.error("inbound tunnel stream failed", { target: `${h.ip}:${h.port}`, err });
        return false;
      }
    },
    udpRelays: () => st.relays.size + mux.total,
    udpFlowsOf: (peer) => mux.flowsOf(peer),
    stop() {
      clearInterval(timer);
      for (const r of [...st.relays]) r.close();
      mux.stop();
    },
  };
}
