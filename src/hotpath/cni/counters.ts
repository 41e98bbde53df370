// The pump's metrics: created when a peer appears (never per packet), removed when its Node goes.
// Per-peer series are bounded by a LabelBudget; peers past it share the overflow series.

import { LabelBudget, OVERFLOW_LABEL, type Counter, type MetricsRegistry } from "../../metrics/index.ts";
import { PEER_LABELS_MAX } from "./constants.ts";

export type DropReason = "no_route" | "unreachable" | "backpressure" | "malformed" | "oversized" | "write_error" | "not_local";
const REASONS: readonly DropReason[] = ["no_route", "unreachable", "backpressure", "malformed", "oversized", "write_error", "not_local"];

export interface PeerCounters {
  readonly label: string;
  readonly txPackets: Counter;
  readonly txBytes: Counter;
  readonly rxPackets: Counter;
  readonly rxBytes: Counter;
  readonly dropped: Counter;
}

export class CniCounters {
  readonly #m: MetricsRegistry;
  readonly #budget = new LabelBudget(PEER_LABELS_MAX);
  readonly drops: Readonly<Record<DropReason, Counter>>;
  readonly #peers = new Map<string, { c: PeerCounters; users: number }>();

  constructor(metrics: MetricsRegistry) {
    this.#m = metrics;
    const drops = {} as Record<DropReason, Counter>;
    for (const r of REASONS) drops[r] = metrics.counter("cni_dropped_packets_total", "Packets the Edge CNI dropped, by reason", { reason: r });
    this.drops = drops;
  }

  /** The series of one peer node (shared by its outbound side and its inbound streams). */
  peer(node: string): PeerCounters {
    const held = this.#peers.get(node);
    if (held) {
      held.users++;
      return held.c;
    }
    const label = this.#budget.take(node) ? node : OVERFLOW_LABEL;
    const l = { peer: label };
    const m = this.#m;
    const c: PeerCounters = {
      label,
      txPackets: m.counter("cni_tx_packets_total", "Packets (an offload superpacket counts once) sent to a peer's agent", l),
      txBytes: m.counter("cni_tx_bytes_total", "Bytes of IP packets sent to a peer's agent", l),
      rxPackets: m.counter("cni_rx_packets_total", "Packets received from a peer's agent and written to the TUN", l),
      rxBytes: m.counter("cni_rx_bytes_total", "Bytes of IP packets received from a peer's agent", l),
      dropped: m.counter("cni_peer_dropped_packets_total", "Packets for or from a peer that were dropped (unreachable, backpressure, malformed)", l),
    };
    this.#peers.set(node, { c, users: 1 });
    return c;
  }

  release(node: string): void {
    const held = this.#peers.get(node);
    if (!held || --held.users > 0) return;
    this.#peers.delete(node);
    if (held.c.label === OVERFLOW_LABEL) return;
    this.#budget.release(node);
    const l = { peer: node };
    for (const name of ["cni_tx_packets_total", "cni_tx_bytes_total", "cni_rx_packets_total", "cni_rx_bytes_total", "cni_peer_dropped_packets_total"]) this.#m.remove(name, l);
  }
}
