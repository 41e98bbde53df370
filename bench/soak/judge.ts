// The soak test's judgement, pure (no sockets, no clock): which failed requests a fault
// explains, whether the agents' gauges came back to their idle values once the load stopped,
// and whether RSS and fds stayed flat after warm-up. bench/soak.ts feeds it; the unit test
// test/unit/soak-judge.test.ts checks it.

export type Kind = "http" | "tcp" | "tcpl" | "udp" | "dns";
export const KINDS: readonly Kind[] = ["http", "tcp", "tcpl", "udp", "dns"];

/** A fault the driver caused: [start, end] in epoch ms, and the request kinds it may fail. */
export interface FaultWindow {
  what: string;
  start: number;
  end: number;
  explains: readonly Kind[];
}

/** A failed request: epoch ms it started, its kind, the reason. */
export type Failure = [number, Kind, string];

/**
 * A failure is explained when a fault that can fail its kind was in force while it ran: it
 * started at most `timeoutMs` before the fault began (it was still waiting) and at most
 * `graceMs` after the fault ended (the time the mesh is allowed to recover, e.g. a tunnel
 * reconnecting or an idle UDP flow noticing).
 */
export function explain(fails: readonly Failure[], faults: readonly FaultWindow[], timeoutMs: number, graceMs: number): { explained: Failure[]; unexplained: Failure[] } {
  const explained: Failure[] = [];
  const unexplained: Failure[] = [];
  for (const f of fails) {
    const [t, kind] = f;
    const hit = faults.some((w) => w.explains.includes(kind) && t >= w.start - timeoutMs && t <= w.end + graceMs);
    (hit ? explained : unexplained).push(f);
  }
  return { explained, unexplained };
}

/** Gauges that must be back to their idle value once the load has stopped and flows idled out. */
export interface Idle {
  fds: number;
  tcpActive: number;
  udpFlows: number;
  tcpStreams: number;
  udpStreams: number;
}

/**
 * Problems with the after-load state against the idle state before the load: connections,
 * flows and TCP streams back to what they were; UDP streams may stay open up to the number of
 * peers (the multiplexed stream per peer is long-lived); fds within `fdSlack` (sockets the
 * runtime keeps around, e.g. a DNS upstream socket opened lazily).
 */
export function drained(before: Idle, after: Idle, udpPeers: number, fdSlack = 4): string[] {
  const out: string[] = [];
  if (after.tcpActive > before.tcpActive) out.push(`proxied TCP connections ${after.tcpActive} (idle ${before.tcpActive})`);
  if (after.udpFlows > before.udpFlows) out.push(`UDP flows ${after.udpFlows} (idle ${before.udpFlows})`);
  if (after.tcpStreams > before.tcpStreams) out.push(`TCP proxy streams ${after.tcpStreams} (idle ${before.tcpStreams})`);
  if (after.udpStreams > before.udpStreams + udpPeers) out.push(`UDP proxy streams ${after.udpStreams} (idle ${before.udpStreams}, at most one per peer may stay)`);
  if (after.fds > before.fds + fdSlack) out.push(`open fds ${after.fds} (idle ${before.fds})`);
  return out;
}

/**
 * Flat after warm-up: over the samples after warm-up (the first fifth, at least one), the
 * highest value of the second half is at most `growth` times (plus `abs`) the highest of the
 * first half; a leak keeps raising the maximum, a warm heap does not. Needs at least 4 samples
 * after warm-up, else undefined (too short to say).
 */
export function flat(xs: readonly number[], growth: number, abs: number): { ok: boolean; firstMax: number; secondMax: number } | undefined {
  const warm = xs.slice(Math.max(1, Math.floor(xs.length / 5)));
  if (warm.length < 4) return undefined;
  const mid = Math.floor(warm.length / 2);
  const firstMax = Math.max(...warm.slice(0, mid));
  const secondMax = Math.max(...warm.slice(mid));
  return { ok: secondMax <= firstMax * growth + abs, firstMax, secondMax };
}
