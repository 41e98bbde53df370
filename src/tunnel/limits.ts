// The proxy stream limits (tunnelLimitConfig: streams in total and per peer), kept separately
// for TCP and UDP: a flood of UDP flows to a node (one stream each with an EdgeMesh peer, which
// knows no multiplexing) must never take the streams TCP connections need, and the other way
// round. Pure bookkeeping, tested without streams.

export type StreamClass = "tcp" | "udp";
export const STREAM_CLASSES: readonly StreamClass[] = ["tcp", "udp"];

export interface ClassCounts {
  tcp: number;
  udp: number;
}

/** Why take() refused: the agent-wide limit of the class, or the peer's. */
export type LimitHit = "total" | "peer";

export class StreamBudget {
  readonly open: ClassCounts = { tcp: 0, udp: 0 };
  readonly #peers = new Map<string, ClassCounts>();

  constructor(
    /** Streams of one class open at once, all peers together. */
    readonly max: number,
    /** Streams of one class open at once with one peer. */
    readonly maxPerPeer: number,
  ) {}

  /** Reserves a stream of `cls` with `peer`; null when granted, else which limit is reached. */
  take(peer: string, cls: StreamClass): LimitHit | null {
    if (this.open[cls] >= this.max) return "total";
    let p = this.#peers.get(peer);
    if (p !== undefined && p[cls] >= this.maxPerPeer) return "peer";
    if (p === undefined) this.#peers.set(peer, (p = { tcp: 0, udp: 0 }));
    p[cls]++;
    this.open[cls]++;
    return null;
  }

  /** Whether take() would refuse now (nothing reserved). */
  full(peer: string, cls: StreamClass): LimitHit | null {
    if (this.open[cls] >= this.max) return "total";
    const p = this.#peers.get(peer);
    return p !== undefined && p[cls] >= this.maxPerPeer ? "peer" : null;
  }

  release(peer: string, cls: StreamClass): void {
    const p = this.#peers.get(peer);
    if (p === undefined || p[cls] === 0) return;
    p[cls]--;
    this.open[cls]--;
    if (p.tcp === 0 && p.udp === 0) this.#peers.delete(peer);
  }

  of(peer: string): ClassCounts {
    const p = this.#peers.get(peer);
    return { tcp: p?.tcp ?? 0, udp: p?.udp ?? 0 };
  }

  /** Peers with at least one open stream. */
  peers(): IterableIterator<[string, ClassCounts]> {
    return this.#peers.entries();
  }
}
