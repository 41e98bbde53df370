// Noticing the API's return quickly, without hammering it while it is away.
//
// The informers back off exponentially up to 30 s (client-go's cap, right for an API that
// answers with errors: thousands of agents share it). For an API that does not answer at all,
// that backoff alone is what made the agent follow the API only up to 30 s after its return.
// So while anything reports the API unreachable, one cheap probe (GET /version, short timeout)
// runs on a fixed cadence, and the first answer after a miss wakes every waiting retry at once:
// the API is followed within about one probe interval of its return, whatever the outage length.
// Cost while down: one request per interval per agent (a refused connection or a SYN), not one
// per informer.
//
// A probe counts as an answer when the server replies with any status below 500 (a 404 or 401
// on /version still means "there"); 5xx and transport errors mean "not back yet". An API that
// keeps coming back and going away within seconds (flapping) gets its probe interval doubled
// per flap, up to flapMaxIntervalMs, so the agent does not wake six informers every second
// against it; two calm minutes reset that.

import type { Clock, Logger, MetricsRegistry } from "./deps.ts";
import type { KubeFetch } from "./fetch-tls.ts";

const second = 1000;

export interface ReachabilityOptions {
  /** One probe; resolves true when the API answered (status < 500). Must honour the signal. */
  probe: (signal: AbortSignal) => Promise<boolean>;
  clock: Clock;
  log: Logger;
  metrics: MetricsRegistry;
  random?: () => number;
  /** Time between probes while the API is unreachable (jittered down by up to 25%). */
  intervalMs?: number;
  /** A probe without an answer within this is a miss (a new TCP + TLS handshake over a WAN fits). */
  timeoutMs?: number;
  /** Unreachable again within this of a return counts as a flap. */
  flapWindowMs?: number;
  /** Cap of the flap-doubled probe interval. */
  flapMaxIntervalMs?: number;
  /** This long without a flap forgets earlier flaps. */
  flapResetMs?: number;
}

export interface Reachability {
  /** A request got no answer (connection refused/reset/timeout, 502-504): probe until it does. */
  unreachable(): void;
  /** Called on every observed return; returns the unsubscribe function. */
  onReturn(fn: () => void): () => void;
  /** Count of returns observed so far (lets a caller see a return it would otherwise miss). */
  readonly returns: number;
  /** True from the first reported miss until a probe gets an answer. */
  readonly down: boolean;
  stop(): void;
}

export function createReachability(o: ReachabilityOptions): Reachability {
  const { clock, log } = o;
  const random = o.random ?? Math.random;
  const intervalMs = o.intervalMs ?? second;
  const timeoutMs = o.timeoutMs ?? 2.5 * second;
  const flapWindowMs = o.flapWindowMs ?? 5 * second;
  const flapMaxIntervalMs = o.flapMaxIntervalMs ?? 16 * second;
  const flapResetMs = o.flapResetMs ?? 120 * second;
  const m = {
    probes: o.metrics.counter("kube_api_probes_total", "Reachability probes (GET /version) sent while the Kubernetes API was unreachable"),
    returns: o.metrics.counter("kube_api_returns_total", "Times the Kubernetes API answered again after being unreachable"),
    down: o.metrics.gauge("kube_api_unreachable", "1 while the Kubernetes API is unreachable (probing)"),
  };
  const listeners = new Set<() => void>();

  let down = false;
  let stopped = false;
  let returns = 0;
  let since = 0;
  let lastReturnAt = Number.NEGATIVE_INFINITY;
  let flaps = 0;
  let timer: unknown;
  let inFlight: AbortController | undefined;

  const currentInterval = () => Math.min(flapMaxIntervalMs, intervalMs * 2 ** flaps);
  const schedule = () => {
    const base = currentInterval();
    timer = clock.setTimeout(probeOnce, Math.round(base * (0.75 + random() * 0.25)));
  };

  async function probeOnce(): Promise<void> {
    timer = undefined;
    if (stopped || !down) return;
    m.probes.value++;
    const ctl = (inFlight = new AbortController());
    const deadline = clock.setTimeout(() => ctl.abort(), timeoutMs);
    let answered = false;
    try {
      answered = await o.probe(ctl.signal);
    } catch {
      answered = false;
    } finally {
      clock.clearTimeout(deadline);
      inFlight = undefined;
    }
    if (stopped || !down) return;
    if (!answered) {
      schedule();
      return;
    }
    down = false;
    m.down.value = 0;
    m.returns.value++;
    returns++;
    lastReturnAt = clock.now();
    log.info("Kubernetes API answers again: resuming list/watch now", { unreachableForMs: lastReturnAt - since });
    for (const fn of [...listeners]) fn();
  }

  return {
    unreachable() {
      if (stopped || down) return;
      const now = clock.now();
      if (now - lastReturnAt <= flapWindowMs) flaps = Math.min(flaps + 1, 10);
      else if (now - lastReturnAt >= flapResetMs) flaps = 0;
      down = true;
      since = now;
      m.down.value = 1;
      log.warn("Kubernetes API unreachable: probing it until it answers", { probeEveryMs: currentInterval(), flaps });
      schedule();
    },
    onReturn(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    get returns() { return returns; },
    get down() { return down; },
    stop() {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
      inFlight?.abort();
      listeners.clear();
    },
  };
}

/** The probe the source uses: GET /version, body not read; any status below 500 is an answer
 * (cheap and served everywhere: apiserver, MetaServer pass-through, even a 401 or 404 is "there"). */
export function versionProbe(f: KubeFetch): (signal: AbortSignal) => Promise<boolean> {
  return async (signal) => {
    const res = await f.request("/version", { signal });
    await res.body?.cancel().catch(() => {});
    return res.status < 500;
  };
}
