// Keeping the relays: a connection to every relay in relayNodes (re-dialed with per-relay
// backoff; due reconnects looked for every RELAY_CHECK_INTERVAL_MS), every such connection
// probed for liveness (relay-liveness.ts). A relay that goes silent is dropped (which ends every
// relayed connection riding on it, and our reservation there) and blocked: the gater asks
// isBlocked(), so circuit dials, new reservations and libp2p's keep-alive redials go to the
// other relays at once instead of waiting seconds on a dead address each. It stays blocked until
// the keeper's own probe, a dial by its configured address (after a quarantine that grows when
// it flaps), gets through.
//
// Every reconnect dials the relay's plain configured addresses, never the peer store's: that
// holds whatever the relay or others reported (identify's listen addresses, observed ones),
// which may be stale or unroutable from here and cost a dial timeout each. A dial of bare
// addresses names no peer, so the gater's block does not apply to it (nothing else dials that
// way); the peer ID that answers is checked against the configured one. One reconnect per relay
// is in flight at a time.
import type { Connection, PeerId } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Multiaddr } from "@multiformats/multiaddr";
import type { Libp2p } from "libp2p";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { RELAY_BACKOFF_MAX_MS, RELAY_CHECK_INTERVAL_MS } from "./constants.ts";
import { TunnelError } from "./errors.ts";
import type { PeerBook, Relay } from "./peers.ts";
import {
  createRelayLiveness,
  nextProbeDelay,
  nextQuarantine,
  RELAY_PROBE_TIMEOUT_MS,
  type LivenessClock,
  type Probed,
  type RelayLiveness,
  type Strikes,
} from "./relay-liveness.ts";

const PING_PROTOCOL = "/ipfs/ping/1.0.0";
const PING_BYTES = 32;
const CODE_P2P = 421;
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

/** Per relay node: when the next reconnect may start, and whether one is running. */
interface Reconnect {
  failures: number;
  nextAt: number;
  inflight: boolean;
}

export class RelayKeeper {
  readonly #o: RelayKeeperOptions;
  readonly #clock: LivenessClock;
  readonly #reconnect = new Map<string, Reconnect>();
  /** Relay peer IDs left silent and not reachable again since: dials refused (the gater asks). */
  readonly #blocked = new Map<string, { relay: string; since: number }>();
  readonly #strikes = new Map<string, Strikes>();
  readonly #watched = new Map<string, Watched>();
  readonly #liveness: RelayLiveness;
  readonly #failovers = new Map<string, { value: number }>();
  readonly #reconnects: { ok: { value: number }; failed: { value: number } };
  #timer?: unknown;
  #running = false;
  #peerIds = new Map<string, PeerId>();
  /** The relays our circuit addresses name now, as last logged. */
  #reserved = "";

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
    const dials = (result: string) => m.counter("tunnel_relay_dials_total", "Dials to a relay by its configured address (reconnects, and probes of a relay left silent)", { result });
    this.#reconnects = { ok: dials("ok"), failed: dials("failed") };
    m.gaugeFn("tunnel_relays_blocked", "Relays left silent and kept out of use until a dial to them succeeds again", () => this.#blocked.size);
  }

  start(): void {
    this.#running = true;
    this.#o.libp2p.addEventListener("self:peer:update", this.#onSelfUpdate);
    this.#tick();
    this.#liveness.start();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#o.libp2p.removeEventListener("self:peer:update", this.#onSelfUpdate);
    this.#liveness.stop();
    for (const w of this.#watched.values()) w.detach();
    this.#watched.clear();
  }

  /** For the connection gater: true while the relay with this peer ID is kept out of dials. */
  isBlocked(peerId: string): boolean {
    return this.#blocked.has(peerId);
  }

  #tick = (): void => {
    if (!this.#running) return;
    void this.check();
    this.#timer = this.#clock.setTimeout(this.#tick, RELAY_CHECK_INTERVAL_MS);
  };

  /** Reconnects every relay we hold no connection to whose backoff (or quarantine) is over. */
  async check(): Promise<void> {
    await Promise.all(this.#o.book.relays.map((r) => this.#maybeReconnect(r)));
  }

  async #maybeReconnect(r: Relay): Promise<void> {
    if (r.nodeName === this.#o.nodeName || r.peerId === this.#o.selfPeerId) return;
    let st = this.#reconnect.get(r.nodeName);
    if (!st) {
      st = { failures: 0, nextAt: 0, inflight: false };
      this.#reconnect.set(r.nodeName, st);
    }
    if (st.inflight) return;
    const peer = this.#peerId(r);
    if (peer && this.#directConnection(peer)) {
      // Connected (the relay may also have been reached by its own doing): it answers.
      if (this.#blocked.delete(r.peerId!)) this.#o.log.info("relay reachable again: connected, back in use", { relay: r.nodeName });
      st.failures = 0;
      st.nextAt = 0;
      return;
    }
    if (this.#clock.now() < st.nextAt) return;
    st.inflight = true;
    try {
      await this.#dial(r, st);
    } finally {
      st.inflight = false;
    }
  }

  async #dial(r: Relay, st: Reconnect): Promise<void> {
    const { libp2p, log } = this.#o;
    const blocked = r.peerId !== undefined ? this.#blocked.get(r.peerId) : undefined;
    const addrs = plainAddrs(r.addrs);
    try {
      if (addrs.length === 0) throw new TunnelError("BAD_CONFIG", `relay ${r.nodeName} has no address`);
      const conn = await libp2p.dial(addrs, { signal: AbortSignal.timeout(blocked ? RELAY_PROBE_TIMEOUT_MS : RELAY_DIAL_TIMEOUT_MS) });
      const got = conn.remotePeer.toString();
      if (r.peerId !== undefined && got !== r.peerId) {
        void conn.close().catch(() => conn.abort(new Error("not the relay")));
        throw new TunnelError("RELAY_IDENTITY", `relay ${r.nodeName}'s address ${conn.remoteAddr.toString()} answered as ${got}, not ${r.peerId}`);
      }
      r.peerId ??= got; // secure mode: learn the relay's ID
      this.#blocked.delete(got);
      st.failures = 0;
      st.nextAt = 0;
      this.#reconnects.ok.value++;
      const ctx: Record<string, unknown> = { relay: r.nodeName, addr: conn.remoteAddr.toString() };
      if (blocked) ctx.blockedForMs = this.#clock.now() - blocked.since;
      log.info(blocked ? "relay reachable again: reconnected by its configured address, back in use" : "connected to relay", ctx);
    } catch (err) {
      st.failures++;
      st.nextAt = this.#clock.now() + (blocked ? nextProbeDelay(st.failures) : Math.min(RELAY_BACKOFF_MAX_MS, 1000 * 2 ** (st.failures - 1)));
      this.#reconnects.failed.value++;
      // A blocked relay is probed every few seconds: log the 1st, 2nd, 4th, 8th... failure.
      if (!blocked) log.warn("relay unreachable", { relay: r.nodeName, failures: st.failures, error: err as Error });
      else if ((st.failures & (st.failures - 1)) === 0) log.info("relay still unreachable, kept out of use", { relay: r.nodeName, probes: st.failures, error: err as Error });
    }
  }

  #directConnection(peer: PeerId): boolean {
    return this.#o.libp2p.getConnections(peer).some((c) => c.status === "open" && !c.remoteAddr.toString().includes("/p2p-circuit"));
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
    if (!this.#blocked.has(peer)) {
      const q = nextQuarantine(this.#strikes.get(peer), now);
      this.#strikes.set(peer, q.strikes);
      this.#blocked.set(peer, { relay: w.relay, since: now });
      this.#reconnect.set(w.relay, { failures: 0, nextAt: now + q.ms, inflight: this.#reconnect.get(w.relay)?.inflight ?? false });
      this.#failoverCounter(w.relay).value++;
    }
    this.#o.log.warn("relay silent: connection dropped, traffic moves to the other relays", {
      relay: w.relay,
      addr: w.conn.remoteAddr.toString(),
      silentForMs,
      missedProbes: misses,
      firstProbeInMs: Math.max(0, (this.#reconnect.get(w.relay)?.nextAt ?? now) - now),
      silencesInWindow: this.#strikes.get(peer)?.count,
    });
    this.#watched.delete(w.conn.id);
    w.detach();
    w.conn.abort(new TunnelError("RELAY_SILENT", `relay ${w.relay} silent for ${silentForMs} ms`));
  }

  /** Our circuit addresses changed (a reservation made or lost): one line naming the relays. */
  #onSelfUpdate = (): void => {
    const ids = new Set<string>();
    for (const a of this.#o.libp2p.getMultiaddrs()) {
      const m = /\/p2p\/([^/]+)\/p2p-circuit/.exec(a.toString());
      if (m) ids.add(m[1]!);
    }
    const names = [...ids].map((id) => this.#o.book.nodeOf(id) ?? id).sort().join(",");
    if (names === this.#reserved) return;
    this.#reserved = names;
    this.#o.log.info("relay reservations now", { relays: names || "none" });
  };

  #failoverCounter(relay: string): { value: number } {
    let c = this.#failovers.get(relay);
    if (!c) {
      c = this.#o.metrics.counter("tunnel_relay_failovers_total", "Relay connections dropped because the relay stopped answering (traffic moved to other relays)", { relay });
      this.#failovers.set(relay, c);
    }
    return c;
  }
}

/** The configured addresses without any /p2p/ID part: a dial of them names no peer. */
function plainAddrs(addrs: readonly Multiaddr[]): Multiaddr[] {
  return addrs.map((a) => a.decapsulateCode(CODE_P2P));
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
