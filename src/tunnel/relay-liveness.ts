// Is the relay still there? A relay whose link dies without a packet (no RST, no FIN) leaves our
// TCP connection to it open for as long as TCP keeps retransmitting, and every relayed
// connection riding on it hangs with it; libp2p's own connection monitor notices after 10-25 s.
// Here every connection to a relay is probed on a short fixed cadence with the muxer's ping
// (a 12-byte yamux frame, answered by go-yamux too, so EdgeMesh relays count), and a connection
// that shows no sign of life for `missesToFail` intervals in a row is reported silent; the
// caller drops it so traffic moves to the other relays.
//
// "Sign of life" is a pong or any byte received on the connection: under a bulk transfer the
// pong can sit behind megabytes of queued data, and a busy relay must not look dead. Over TCP a
// probe is not lost, only late: a lossy WAN delays pongs by retransmission timeouts (200 ms,
// then doubling), so the same segment lost four times in a row stalls the connection for
// 200+400+800+1600 = 3.0 s. The silence that fails a relay is therefore at least 3.2 s (eight
// intervals of 400 ms; at most 3.6 s, by phase), which takes five losses of one segment in a row
// (a 6.2 s stall), not an unlucky burst. With three intervals of 750 ms (2.25-3 s, until
// 2026-12-06) a 10%-lossy link failed over now and then: four losses of one segment in 40 s.
//
// Pure of libp2p: connections come in as Probed (tests use stand-ins), time from the injected
// clock (control's ManualClock fits), so the decisions are tested without sockets or sleeping.

/** The clock subset used here (structurally the control plane's Clock). */
export interface LivenessClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** One connection to a relay, as the monitor sees it. */
export interface Probed {
  /** Stable for the connection's life (libp2p's connection id). */
  readonly id: string;
  /** The relay's node name (labels, logs). */
  readonly relay: string;
  /** Resolves when the relay answered one probe; may stay pending forever on a dead link. */
  ping(): Promise<unknown>;
  /** A counter that moves whenever anything arrives on the connection. */
  received(): number;
}

export interface SilentInfo {
  misses: number;
  /** Time since the last sign of life. */
  silentForMs: number;
}

export interface RelayLivenessOptions {
  clock: LivenessClock;
  /** The connections to watch right now (asked every interval; gone ones are forgotten). */
  list(): Iterable<Probed>;
  /** A connection showed no sign of life for missesToFail intervals: drop it. Called once per
   * connection. */
  onSilent(p: Probed, info: SilentInfo): void;
  intervalMs?: number;
  missesToFail?: number;
  counters?: { probes: { value: number }; misses: { value: number } };
}

export interface RelayLiveness {
  start(): void;
  stop(): void;
  /** One interval's work (exposed for tests that drive it directly). */
  tick(): void;
}

/** Probe cadence: with 8 misses a silent relay is noticed 3.2-3.6 s after its last pong. A short
 * interval with many misses keeps the window narrow: its floor clears a four-loss TCP stall and
 * its ceiling leaves the failover well inside 5 s. A ping is a 12-byte frame, 2.5 per second. */
export const RELAY_PROBE_INTERVAL_MS = 400;
export const RELAY_PROBE_MISSES = 8;

interface State {
  misses: number;
  pending: boolean;
  answered: boolean;
  rx: number;
  lastAliveAt: number;
  seen: number;
  /** Reported silent; stays listed only until the caller's drop takes effect. */
  reported: boolean;
}

export function createRelayLiveness(o: RelayLivenessOptions): RelayLiveness {
  const { clock } = o;
  const intervalMs = o.intervalMs ?? RELAY_PROBE_INTERVAL_MS;
  const missesToFail = o.missesToFail ?? RELAY_PROBE_MISSES;
  const states = new Map<string, State>();
  let timer: unknown;
  let running = false;
  let round = 0;

  function probe(p: Probed, s: State): void {
    s.pending = true;
    s.answered = false;
    if (o.counters) o.counters.probes.value++;
    p.ping().then(
      () => {
        s.pending = false;
        s.answered = true;
      },
      () => {
        s.pending = false; // a failed ping is no sign of life; the next interval sends another
      },
    );
  }

  function tick(): void {
    round++;
    const now = clock.now();
    for (const p of o.list()) {
      let s = states.get(p.id);
      if (!s) {
        // New connection: alive by definition, first probe now.
        s = { misses: 0, pending: false, answered: true, rx: p.received(), lastAliveAt: now, seen: round, reported: false };
        states.set(p.id, s);
      }
      s.seen = round;
      if (s.reported) continue;
      const rx = p.received();
      if (s.answered || rx !== s.rx) {
        s.misses = 0;
        s.lastAliveAt = now;
      } else {
        s.misses++;
        if (o.counters) o.counters.misses.value++;
      }
      s.rx = rx;
      if (s.misses >= missesToFail) {
        s.reported = true;
        o.onSilent(p, { misses: s.misses, silentForMs: now - s.lastAliveAt });
        continue;
      }
      if (!s.pending) probe(p, s);
    }
    for (const [id, s] of states) if (s.seen !== round) states.delete(id);
  }

  const loop = () => {
    if (!running) return;
    try {
      tick();
    } catch {
      // a throwing list()/onSilent must not end the monitor; the next interval tries again
    }
    if (running) timer = clock.setTimeout(loop, intervalMs);
  };

  return {
    start() {
      if (running) return;
      running = true;
      timer = clock.setTimeout(loop, intervalMs);
    },
    stop() {
      running = false;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      states.clear();
    },
    tick,
  };
}

/**
 * A relay that went silent is kept out of dials (the gater refuses them, so circuit dials,
 * reservations and libp2p's own keep-alive redials go to the other relays at once instead of
 * waiting seconds on a dead address) until a reconnect to it succeeds: only the keeper's own
 * dial, by the relay's configured address, gets through. The first such probe comes after the
 * quarantine: 2 s, doubling for every further silence within FLAP_WINDOW_MS, up to 60 s. A relay
 * that flaps is thus tried ever less often; one that stays well for the window starts again at
 * 2 s. A time-based block alone let the first dial after it expire hang on the still-dead relay
 * (10 s) while circuit dials through that relay joined it.
 */
export const QUARANTINE_BASE_MS = 2000;
export const QUARANTINE_MAX_MS = 60_000;
export const FLAP_WINDOW_MS = 10 * 60_000;

export interface Strikes {
  count: number;
  lastAt: number;
}

export function nextQuarantine(prev: Strikes | undefined, now: number): { strikes: Strikes; ms: number } {
  const count = prev && now - prev.lastAt < FLAP_WINDOW_MS ? prev.count + 1 : 1;
  const ms = Math.min(QUARANTINE_MAX_MS, QUARANTINE_BASE_MS * 2 ** Math.min(count - 1, 16));
  return { strikes: { count, lastAt: now }, ms };
}

/**
 * Probes of a relay left silent: after the quarantine one every second at first, backing off to
 * one every RELAY_PROBE_BACKOFF_MAX_MS while it stays unreachable (a dial to a dead address is a
 * few SYNs), so a relay back after a long outage is reconnected within that.
 */
export const RELAY_PROBE_BACKOFF_BASE_MS = 1000;
export const RELAY_PROBE_BACKOFF_MAX_MS = 10_000;
/** A probe dial (TCP, PSK, Noise, yamux to a relay on a LAN or WAN) that takes longer fails. */
export const RELAY_PROBE_TIMEOUT_MS = 3000;

/** The wait before the next probe of a blocked relay after `failures` failed ones in a row. */
export function nextProbeDelay(failures: number): number {
  return Math.min(RELAY_PROBE_BACKOFF_MAX_MS, RELAY_PROBE_BACKOFF_BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 16));
}
