// Keeping the relays: a connection to every relay in relayNodes (re-dialed with per-relay
// backoff, checked every RELAY_CHECK_INTERVAL_MS), every such connection probed for liveness
// (relay-liveness.ts). A relay that goes silent is dropped (which ends every relayed connection
// riding on it, and our reservation there) and kept out of dials for a quarantine that grows
// when it flaps: the gater asks isBlocked(), so circuit dials and new reservations go to the
// other relays at once instead of waiting seconds on a dead address each.
import type { Connection, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Libp2p } from "libp2p";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { RELAY_BACKOFF_MAX_MS, RELAY_CHECK_INTERVAL_MS } from "./constants.ts";
import { TunnelError } from "./errors.ts";
import type { PeerBook, Relay } from "./peers.ts";
import { createRelayLiveness, nextQuarantine, type LivenessClock, type Probed, type RelayLiveness, type Strikes } from "./relay-liveness.ts";

const PING_PROTOCOL = "/ipfs/ping/1.0.0";
const PING_BYTES = 32;
/** A relay dial (TCP, PSK, Noise, yamux) on a LAN or WAN takes well under this. */
const RELAY_DIAL_TIMEOUT_MS = 10_000;

const systemClock: LivenessClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface RelayKeeperOptions {
  libp2p: Libp2p;
  book: PeerBook;
  nodeName: string;
  selfPeerId: string;
  log: Logger;
  metrics: MetricsRegistry;
  clock?: LivenessClock;
  probeIntervalMs?: number;
  probeMisses?: number;
}

/** A relay connection as the liveness monitor sees it; one per libp2p connection. */
interface Watched extends Probed {
  conn: Connection;
  detach(): void;
}

export class RelayKeeper {
  readonly #o: RelayKeeperOptions;
  readonly #clock: LivenessClock;
  /** Per relay node: dial backoff (also set by a silence, to the quarantine). */
  readonly #backoff = new Map<string, { failures: number; nextAt: number }>();
  /** Per relay peer ID: dials refused until then (the gater asks). */
  readonly #blockedUntil = new Map<string, number>();
  readonly #strikes = new Map<string, Strikes>();
  readonly #watched = new Map<string, Watched>();
  readonly #liveness: RelayLiveness;
  readonly #failovers = new Map<string, { value: number }>();
  #timer?: ReturnType<typeof setInterval>;
  #peerIds = new Map<string, PeerId>();

  constructor(o: RelayKeeperOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    const m = o.metrics;
    this.#liveness = createRelayLiveness({
      clock: this.#clock,
      intervalMs: o.probeIntervalMs,
      missesToFail: o.probeMisses,
      list: () => this.#connections(),
      onSilent: (p, info) => this.#silent(p as Watched, info.silentForMs, info.misses),
      counters: {
        probes: m.counter("tunnel_relay_probes_total", "Liveness probes (yamux pings) sent on connections to relays"),
        misses: m.counter("tunnel_relay_probe_misses_total", "Probe intervals in which a relay connection showed no sign of life"),
      },
    });
  }

  start(): void {
    void this.check();
    this.#timer = setInterval(() => void this.check(), RELAY_CHECK_INTERVAL_MS);
    this.#liveness.start();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#liveness.stop();
    for (const w of this.#watched.values()) w.detach();
    this.#watched.clear();
  }

  /** For the connection gater: true while the relay with this peer ID is kept out of dials. */
  isBlocked(peerId: string): boolean {
    const until = this.#blockedUntil.get(peerId);
    if (until === undefined) return false;
    if (this.#clock.now() < until) return true;
    this.#blockedUntil.delete(peerId);
    return false;
  }

  /** Dials relays we are not connected to, with per-relay exponential backoff. */
  async check(): Promise<void> {
    const { libp2p, book, log } = this.#o;
    const now = this.#clock.now();
    await Promise.all(
      book.relays.map(async (r) => {
        if (r.nodeName === this.#o.nodeName || r.peerId === this.#o.selfPeerId) return;
        const key = r.nodeName;
        const peer = this.#peerId(r);
        if (peer && libp2p.getConnections(peer).length > 0) {
          this.#backoff.delete(key);
          return;
        }
        const state = this.#backoff.get(key) ?? { failures: 0, nextAt: 0 };
        if (now < state.nextAt) return;
        try {
          let conn;
          if (peer) {
            await libp2p.peerStore.merge(peer, { multiaddrs: r.addrs });
            conn = await libp2p.dial(peer, { signal: AbortSignal.timeout(RELAY_DIAL_TIMEOUT_MS) });
          } else {
            conn = await libp2p.dial(r.addrs, { signal: AbortSignal.timeout(RELAY_DIAL_TIMEOUT_MS) });
            r.peerId = conn.remotePeer.toString(); // secure mode: learn the relay's ID
          }
          this.#backoff.delete(key);
          this.#blockedUntil.delete(conn.remotePeer.toString());
          log.info("connected to relay", { relay: r.nodeName, addr: conn.remoteAddr.toString() });
        } catch (err) {
          state.failures++;
          state.nextAt = this.#clock.now() + Math.min(RELAY_BACKOFF_MAX_MS, 1000 * 2 ** (state.failures - 1));
          this.#backoff.set(key, state);
          log.warn("relay unreachable", { relay: r.nodeName, failures: state.failures, error: err as Error });
        }
      }),
    );
  }

  #peerId(r: Relay): PeerId | undefined {
    if (!r.peerId) return undefined;
    let id = this.#peerIds.get(r.peerId);
    if (!id) {
      id = peerIdFromString(r.peerId);
      this.#peerIds.set(r.peerId, id);
    }
    return id;
  }

  /** The open, direct connections to relays now (relayed ones ride on these). */
  #connections(): Watched[] {
    const out: Watched[] = [];
    const live = new Set<string>();
    for (const r of this.#o.book.relays) {
      const peer = this.#peerId(r);
      if (!peer || r.peerId === this.#o.selfPeerId) continue;
      for (const conn of this.#o.libp2p.getConnections(peer)) {
        if (conn.status !== "open" || conn.remoteAddr.toString().includes("/p2p-circuit")) continue;
        let w = this.#watched.get(conn.id);
        if (!w) {
          w = watch(conn, r.nodeName);
          this.#watched.set(conn.id, w);
        }
        live.add(conn.id);
        out.push(w);
      }
    }
    for (const [id, w] of this.#watched) {
      if (live.has(id)) continue;
      w.detach();
      this.#watched.delete(id);
    }
    return out;
  }

  #silent(w: Watched, silentForMs: number, misses: number): void {
    const now = this.#clock.now();
    const peer = w.conn.remotePeer.toString();
    // A second connection to the same relay found silent in the same breath is one silence.
    let quarantineMs = (this.#blockedUntil.get(peer) ?? 0) - now;
    if (quarantineMs <= 0) {
      const q = nextQuarantine(this.#strikes.get(peer), now);
      this.#strikes.set(peer, q.strikes);
      this.#blockedUntil.set(peer, now + q.ms);
      this.#backoff.set(w.relay, { failures: q.strikes.count, nextAt: now + q.ms });
      quarantineMs = q.ms;
      this.#failoverCounter(w.relay).value++;
    }
    this.#o.log.warn("relay silent: connection dropped, traffic moves to the other relays", {
      relay: w.relay,
      addr: w.conn.remoteAddr.toString(),
      silentForMs,
      missedProbes: misses,
      retryInMs: quarantineMs,
      silencesInWindow: this.#strikes.get(peer)?.count,
    });
    this.#watched.delete(w.conn.id);
    w.detach();
    w.conn.abort(new TunnelError("RELAY_SILENT", `relay ${w.relay} silent for ${silentForMs} ms`));
  }

  #failoverCounter(relay: string): { value: number } {
    let c = this.#failovers.get(relay);
    if (!c) {
      c = this.#o.metrics.counter("tunnel_relay_failovers_total", "Relay connections dropped because the relay stopped answering (traffic moved to other relays)", { relay });
      this.#failovers.set(relay, c);
    }
    return c;
  }
}

/**
 * Liveness view of one connection: yamux's ping frame when the muxer has one (no stream, a
 * 12-byte frame, answered by go-yamux too), else a /ipfs/ping/1.0.0 stream per probe (QUIC).
 * The ping is never given a timeout signal: yamux forgets a ping whose signal aborted, and the
 * late pong would then be a protocol error that closes the whole connection. A dead link leaves
 * it pending until the connection is dropped.
 */
function watch(conn: Connection, relay: string): Watched {
  let rx = 0;
  const onMessage = () => {
    rx++;
  };
  const source = (conn as unknown as { maConn?: unknown }).maConn as { addEventListener?: (t: string, fn: () => void) => void; removeEventListener?: (t: string, fn: () => void) => void };
  source?.addEventListener?.("message", onMessage);
  const muxer = (conn as unknown as { muxer?: { ping?: () => Promise<number> } }).muxer;
  const ping = typeof muxer?.ping === "function" ? () => muxer.ping!() : () => streamPing(conn);
  return {
    id: conn.id,
    relay,
    conn,
    ping,
    received: () => rx,
    detach: () => source?.removeEventListener?.("message", onMessage),
  };
}

async function streamPing(conn: Connection): Promise<void> {
  const stream = await conn.newStream(PING_PROTOCOL, { runOnLimitedConnection: true });
  try {
    await new Promise<void>((resolve, reject) => {
      let got = 0;
      stream.addEventListener("message", (e) => {
        got += e.data.byteLength;
        if (got >= PING_BYTES) resolve();
      });
      stream.addEventListener("close", (e) => {
        if (got < PING_BYTES) reject((e as { error?: Error }).error ?? new Error("ping stream closed"));
      });
      stream.send(crypto.getRandomValues(new Uint8Array(PING_BYTES)));
    });
  } finally {
    await stream.close().catch(() => stream.abort(new Error("ping done")));
  }
}
